/**
 * The /sessions REST API through real HTTP, against memory, SQLite and PostgreSQL: create, read, merge versus
 * replace, status changes, every filter, the cursor, delete and bulk cleanup, metrics, and the 404, 409, 413,
 * 415 and 422 answers.
 */
import { request } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { client, sleep, STORE_KINDS, StoreKit, TEST_KEY, type Client, type TestServer } from './helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe.each(STORE_KINDS)('/sessions over real HTTP (%s store)', (kind) => {
  const kit = new StoreKit(kind);
  let server: TestServer;
  let api: Client;
  beforeAll(() => kit.setup());
  afterAll(() => kit.teardown());
  afterEach(() => kit.closeAll());
  const start = async (config = {}) => {
    server = await kit.start(config);
    api = client(server);
  };
  const create = async (body: Record<string, unknown>) => {
    const r = await api.post('/sessions', body);
    expect(r.status, r.text).toBe(201);
    return r.json;
  };

  it('POST creates with defaults: 201, the full session and a Location header; also at /sessions/', async () => {
    await start();
    const r = await api.post('/sessions', {
      agent_id: 'agent-1',
      session_type: 'conversation',
      extra: 'ignored',
    });
    expect(r.status).toBe(201);
    const s = r.json;
    expect(s.id).toMatch(UUID);
    expect(r.headers.get('location')).toBe(`/sessions/${s.id}`);
    expect(s).toEqual({
      id: s.id,
      agent_id: 'agent-1',
      session_type: 'conversation',
      status: 'active',
      context: {},
      checkpoint: null,
      runtime_backend: 'unknown',
      runtime_metadata: {},
      created_at: s.created_at,
      updated_at: s.created_at,
      status_history: [{ status: 'active', at: s.created_at }],
      task: null,
    });
    expect(s.created_at).toMatch(ISO_MS);

    const full = {
      id: 'sess/1 ü',
      agent_id: 'agent-2',
      session_type: 'development',
      status: 'paused',
      context: { a: { b: [1, 2] } },
      checkpoint: { step: 3 },
      runtime_backend: 'kubernetes',
      runtime_metadata: { pod: 'p-1' },
    };
    const r2 = await api.post('/sessions/', full);
    expect(r2.status).toBe(201);
    expect(r2.headers.get('location')).toBe(`/sessions/${encodeURIComponent(full.id)}`);
    expect(r2.json).toMatchObject({ ...full, status_history: [{ status: 'paused' }] });

    const got = await api.get(r2.headers.get('location')!);
    expect(got.status).toBe(200);
    expect(got.json).toEqual(r2.json);
    const slash = await api.get(`/sessions/${encodeURIComponent(full.id)}/`);
    expect(slash.json).toEqual(r2.json);
  });

  it('GET of an unknown session is 404 {"detail":"Session not found"}; a duplicate id is 409', async () => {
    await start();
    const r = await api.get('/sessions/nope');
    expect(r.status).toBe(404);
    expect(r.json).toEqual({ detail: 'Session not found' });
    await create({ id: 'dup', agent_id: 'a', session_type: 't' });
    const again = await api.post('/sessions', { id: 'dup', agent_id: 'b', session_type: 't' });
    expect(again.status).toBe(409);
    expect(again.json).toEqual({ detail: "Session 'dup' already exists" });
    expect((await api.get('/sessions/dup')).json.agent_id).toBe('a');
  });

  it('PATCH merges context (RFC 7396: null deletes, arrays replace) and replaces checkpoint; PUT replaces context', async () => {
    await start();
    const s = await create({
      id: 's1',
      agent_id: 'a',
      session_type: 't',
      context: { a: 1, b: { c: 2, d: 3 }, arr: [1, 2], keep: 'x' },
      checkpoint: { x: 1, y: 2 },
    });
    await sleep(3);
    const p = await api.patch('/sessions/s1', {
      context: { a: null, b: { c: null, e: 4 }, arr: [3], add: { n: null, m: 1 } },
      checkpoint: { y: 3 },
      runtime_backend: 'local',
      runtime_metadata: { node: 'n1' },
    });
    expect(p.status, p.text).toBe(200);
    expect(p.json.context).toEqual({ b: { d: 3, e: 4 }, arr: [3], keep: 'x', add: { m: 1 } });
    expect(p.json.checkpoint).toEqual({ y: 3 });
    expect(p.json.runtime_backend).toBe('local');
    expect(p.json.runtime_metadata).toEqual({ node: 'n1' });
    expect(p.json.updated_at > s.updated_at).toBe(true);
    expect(p.json.created_at).toBe(s.created_at);
    expect((await api.get('/sessions/s1')).json).toEqual(p.json);

    // null leaves a field alone, except checkpoint, which it clears
    const p2 = await api.patch('/sessions/s1/', { context: null, status: null, checkpoint: null });
    expect(p2.status).toBe(200);
    expect(p2.json.context).toEqual(p.json.context);
    expect(p2.json.checkpoint).toBeNull();

    const put = await api.put('/sessions/s1/context', { only: ['this'] });
    expect(put.status).toBe(200);
    expect(put.json.context).toEqual({ only: ['this'] });
    expect((await api.get('/sessions/s1')).json.context).toEqual({ only: ['this'] });
    expect((await api.put('/sessions/s1/context/', {})).json.context).toEqual({});

    expect((await api.patch('/sessions/missing', { context: {} })).status).toBe(404);
    expect((await api.put('/sessions/missing/context', {})).json).toEqual({ detail: 'Session not found' });
    const notObject = await api.put('/sessions/s1/context', [1]);
    expect(notObject.status).toBe(422);
    expect(notObject.json.detail[0]).toMatchObject({ type: 'dict_type', loc: ['body'] });
  });

  it('status changes follow the table: history with reasons, clients may mark crashed, illegal is 409 naming both', async () => {
    await start();
    await create({ id: 's', agent_id: 'a', session_type: 't' });
    expect((await api.patch('/sessions/s', { status: 'paused', reason: 'lunch' })).json.status).toBe(
      'paused',
    );
    expect((await api.patch('/sessions/s', { status: 'active' })).status).toBe(200);
    expect((await api.patch('/sessions/s', { status: 'crashed', reason: 'agent died' })).status).toBe(200);
    expect((await api.patch('/sessions/s', { status: 'active' })).status).toBe(200);
    const done = await api.patch('/sessions/s', { status: 'completed' });
    expect(done.json.status_history.map((h: { status: string }) => h.status)).toEqual([
      'active',
      'paused',
      'active',
      'crashed',
      'active',
      'completed',
    ]);
    expect(done.json.status_history[1].reason).toBe('lunch');
    expect(done.json.status_history[3].reason).toBe('agent died');
    const illegal = await api.patch('/sessions/s', { status: 'active' });
    expect(illegal.status).toBe(409);
    expect(illegal.json).toEqual({ detail: "Cannot change session status from 'completed' to 'active'" });
    await create({ id: 'c', agent_id: 'a', session_type: 't', status: 'crashed' });
    const r = await api.patch('/sessions/c', { status: 'paused' });
    expect(r.status).toBe(409);
    expect(r.json.detail).toContain("'crashed'");
    expect(r.json.detail).toContain("'paused'");
    expect((await api.get('/sessions/s')).json.status).toBe('completed');
  });

  it('GET /sessions lists newest first, with every filter', async () => {
    await start();
    const made: Record<string, { created_at: string; updated_at: string }> = {};
    const specs: [string, string, string, string][] = [
      ['s1', 'agent-a', 'conversation', 'active'],
      ['s2', 'agent-a', 'development', 'paused'],
      ['s3', 'agent-b', 'conversation', 'completed'],
      ['s4', 'agent-b', 'task', 'crashed'],
      ['s5', 'agent-a', 'conversation', 'failed'],
    ];
    for (const [id, agent_id, session_type, status] of specs) {
      made[id] = await create({ id, agent_id, session_type, status });
      await sleep(3);
    }
    const ids = async (q: string) => {
      const r = await api.get(`/sessions${q}`);
      expect(r.status, r.text).toBe(200);
      return r.json.map((s: { id: string }) => s.id);
    };
    expect(await ids('')).toEqual(['s5', 's4', 's3', 's2', 's1']);
    expect(await ids('/')).toEqual(['s5', 's4', 's3', 's2', 's1']);
    expect(await ids('?agent_id=agent-a')).toEqual(['s5', 's2', 's1']);
    expect(await ids('?status=paused&status=crashed')).toEqual(['s4', 's2']);
    expect(await ids('?status=active')).toEqual(['s1']);
    expect(await ids('?session_type=conversation')).toEqual(['s5', 's3', 's1']);
    expect(await ids('?session_type=conversation&agent_id=agent-b')).toEqual(['s3']);
    const c3 = made.s3!.created_at;
    expect(await ids(`?created_after=${c3}`)).toEqual(['s5', 's4']);
    expect(await ids(`?created_before=${c3}`)).toEqual(['s2', 's1']);
    expect(await ids(`?created_after=${made.s1!.created_at}&created_before=${made.s5!.created_at}`)).toEqual([
      's4',
      's3',
      's2',
    ]);
    // a time with an offset, its '+' sent raw (a query string reads it as a space): still understood
    const shifted = new Date(Date.parse(c3) + 2 * 3600_000).toISOString().replace('Z', '+02:00');
    expect(await ids(`?created_after=${shifted}`)).toEqual(['s5', 's4']);
    expect(await ids(`?created_after=${encodeURIComponent(shifted)}`)).toEqual(['s5', 's4']);
    expect(await ids('?created_after=2000-01-01')).toHaveLength(5);
    expect(await ids('?created_before=2000-01-01')).toEqual([]);

    await sleep(3);
    const touched = await api.patch('/sessions/s2', { context: { x: 1 } });
    const u = touched.json.updated_at;
    expect(await ids(`?updated_after=${made.s5!.updated_at}`)).toEqual(['s2']);
    expect(await ids(`?updated_before=${u}`)).toEqual(['s5', 's4', 's3', 's1']);
    expect(await ids(`?updated_before=${u}&updated_after=${made.s3!.updated_at}`)).toEqual(['s5', 's4']);
  });

  it('pages with a cursor in a Link header that keeps the filters, with no gap and no repeat', async () => {
    await start();
    for (let i = 0; i < 7; i++) await create({ id: `p${i}`, agent_id: 'pager', session_type: 't' });
    await create({ id: 'other', agent_id: 'someone-else', session_type: 't' });
    const seen: string[] = [];
    let url: string | null = '/sessions?agent_id=pager&limit=3';
    const sizes: number[] = [];
    while (url) {
      const r = await api.get(url);
      expect(r.status, r.text).toBe(200);
      sizes.push(r.json.length);
      seen.push(...r.json.map((s: { id: string }) => s.id));
      const link = r.headers.get('link');
      if (!link) break;
      const m = /^<([^>]+)>; rel="next"$/.exec(link);
      expect(m).not.toBeNull();
      const next = new URL(m![1]!, server.base);
      expect(next.pathname).toBe('/sessions');
      expect(next.searchParams.get('agent_id')).toBe('pager');
      expect(next.searchParams.get('limit')).toBe('3');
      url = m![1]!;
    }
    expect(sizes).toEqual([3, 3, 1]);
    const all = (await api.get('/sessions?agent_id=pager&limit=1000')).json.map((s: { id: string }) => s.id);
    expect(seen).toEqual(all);
    expect(new Set(seen).size).toBe(7);
    const one = await api.get('/sessions?limit=8');
    expect(one.json).toHaveLength(8);
    expect(one.headers.get('link')).toBeNull();

    const bad = await api.get('/sessions?cursor=not-a-cursor');
    expect(bad.status).toBe(422);
    expect(bad.json.detail[0]).toMatchObject({
      type: 'value_error',
      loc: ['query', 'cursor'],
      msg: 'Invalid cursor',
    });
  });

  it('answers 422 in FastAPI shape for bad query parameters', async () => {
    await start();
    const q = async (s: string) => {
      const r = await api.get(`/sessions?${s}`);
      expect(r.status, s).toBe(422);
      return r.json.detail;
    };
    expect(await q('limit=0')).toEqual([
      {
        type: 'greater_than_equal',
        loc: ['query', 'limit'],
        msg: 'Input should be greater than or equal to 1',
        input: '0',
        ctx: { ge: 1 },
      },
    ]);
    expect((await q('limit=1001'))[0]).toMatchObject({ type: 'less_than_equal', ctx: { le: 1000 } });
    expect((await q('limit=ten'))[0]).toMatchObject({ type: 'int_parsing', loc: ['query', 'limit'] });
    expect((await q('status=running'))[0]).toMatchObject({
      type: 'enum',
      loc: ['query', 'status', 0],
      msg: "Input should be 'active', 'paused', 'completed', 'crashed', 'failed' or 'cancelled'",
      input: 'running',
    });
    expect((await q('created_after=yesterday'))[0]).toMatchObject({
      type: 'datetime_from_date_parsing',
      loc: ['query', 'created_after'],
      input: 'yesterday',
    });
    expect((await q('updated_before=2025-02-30T00:00:00Z'))[0].loc).toEqual(['query', 'updated_before']);
    // every problem at once, as FastAPI lists them
    expect((await q('limit=0&created_before=x&status=nope')).map((d: { loc: string[] }) => d.loc[1])).toEqual(
      ['status', 'created_before', 'limit'],
    );
  });

  it('answers 422 in FastAPI shape for bad bodies, 415 for a non-JSON body and 413 for one over the limit', async () => {
    await start({ maxHttpBodyBytes: 16 * 1024 });
    const bad = async (body: unknown) => {
      const r = await api.post('/sessions', body);
      expect(r.status, JSON.stringify(body)).toBe(422);
      return r.json.detail;
    };
    expect(await bad({ session_type: 't' })).toEqual([
      { type: 'missing', loc: ['body', 'agent_id'], msg: 'Field required', input: { session_type: 't' } },
    ]);
    expect(await bad({ agent_id: 5, session_type: 't' })).toEqual([
      { type: 'string_type', loc: ['body', 'agent_id'], msg: 'Input should be a valid string', input: 5 },
    ]);
    expect(await bad({ agent_id: '', session_type: 't' })).toEqual([
      {
        type: 'string_too_short',
        loc: ['body', 'agent_id'],
        msg: 'String should have at least 1 character',
        input: '',
        ctx: { min_length: 1 },
      },
    ]);
    expect((await bad({ agent_id: 'x'.repeat(257), session_type: 't' }))[0]).toMatchObject({
      type: 'string_too_long',
      ctx: { max_length: 256 },
    });
    expect(await bad({ agent_id: 'a', session_type: 't', status: 'running' })).toEqual([
      {
        type: 'enum',
        loc: ['body', 'status'],
        msg: "Input should be 'active', 'paused', 'completed', 'crashed', 'failed' or 'cancelled'",
        input: 'running',
        ctx: { expected: "'active', 'paused', 'completed', 'crashed', 'failed' or 'cancelled'" },
      },
    ]);
    expect((await bad({ agent_id: 'a', session_type: 't', runtime_backend: 'docker' }))[0]).toMatchObject({
      type: 'enum',
      msg: "Input should be 'local', 'kubernetes' or 'unknown'",
    });
    expect(await bad({ agent_id: 'a', session_type: 't', context: [1] })).toEqual([
      { type: 'dict_type', loc: ['body', 'context'], msg: 'Input should be a valid dictionary', input: [1] },
    ]);
    expect((await bad({ agent_id: 'a', session_type: 't', checkpoint: 'x' }))[0]).toMatchObject({
      type: 'dict_type',
      loc: ['body', 'checkpoint'],
    });
    expect((await bad({ id: 'metrics', agent_id: 'a', session_type: 't' }))[0]).toMatchObject({
      type: 'value_error',
      loc: ['body', 'id'],
    });
    expect((await bad({})).map((d: { loc: string[] }) => d.loc)).toEqual([
      ['body', 'agent_id'],
      ['body', 'session_type'],
    ]);
    expect(await bad([1])).toEqual([
      {
        type: 'model_attributes_type',
        loc: ['body'],
        msg: 'Input should be a valid dictionary or object to extract fields from',
        input: [1],
      },
    ]);
    const malformed = await bad('{"agent_id": ');
    expect(malformed[0]).toMatchObject({
      type: 'json_invalid',
      loc: ['body', expect.any(Number)],
      msg: 'JSON decode error',
    });
    const empty = await api.post('/sessions', undefined, { headers: { 'content-type': 'application/json' } });
    expect(empty.status).toBe(422);
    expect(empty.json.detail[0]).toMatchObject({ type: 'missing', loc: ['body'] });

    await create({ id: 'v', agent_id: 'a', session_type: 't' });
    const patchBad = await api.patch('/sessions/v', { status: 'done', context: 'x' });
    expect(patchBad.status).toBe(422);
    expect(patchBad.json.detail.map((d: { type: string }) => d.type)).toEqual(['enum', 'dict_type']);

    const wrongType = await api.post('/sessions', 'agent_id=a', {
      headers: { 'content-type': 'text/plain' },
    });
    expect(wrongType.status).toBe(415);
    expect(wrongType.json.detail).toContain('application/json');

    const big = await rawPost(
      server.port,
      '/sessions',
      JSON.stringify({ agent_id: 'a', session_type: 't', context: { pad: 'x'.repeat(20_000) } }),
    );
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body)).toEqual({ detail: 'Request body too large' });
    expect((await api.get('/sessions')).json).toHaveLength(1);
  });

  it('takes the API key as X-API-Key or Authorization: Bearer', async () => {
    await start();
    const r = await api.post('/sessions', { agent_id: 'a', session_type: 't' }, { auth: 'bearer' });
    expect(r.status).toBe(201);
    expect((await api.get('/sessions', { auth: 'bearer' })).status).toBe(200);
    expect((await api.get('/api/health', { auth: 'bearer' })).status).toBe(200);
    const wrong = await api.get('/sessions', { auth: 'bearer', key: 'wrong' });
    expect(wrong.status).toBe(401);
    expect(wrong.json).toEqual({ detail: 'Invalid API key' });
    const none = await api.get('/sessions', { auth: null });
    expect(none.status).toBe(422);
    expect(
      (await api.get('/sessions', { auth: null, headers: { authorization: `Basic ${TEST_KEY}` } })).status,
    ).toBe(422);
  });

  it('DELETE answers 204 with no body, then 404', async () => {
    await start();
    await create({ id: 'd', agent_id: 'a', session_type: 't' });
    const r = await api.delete('/sessions/d');
    expect(r.status).toBe(204);
    expect(r.text).toBe('');
    expect((await api.get('/sessions/d')).status).toBe(404);
    const again = await api.delete('/sessions/d/');
    expect(again.status).toBe(404);
    expect(again.json).toEqual({ detail: 'Session not found' });
  });

  it('DELETE /sessions cleans up by filter, and needs at least one', async () => {
    await start();
    for (let i = 0; i < 4; i++)
      await create({ id: `done${i}`, agent_id: 'a', session_type: 't', status: 'completed' });
    await create({ id: 'live', agent_id: 'a', session_type: 't' });
    await create({ id: 'failed', agent_id: 'b', session_type: 't', status: 'failed' });
    const none = await api.delete('/sessions');
    expect(none.status).toBe(400);
    expect(none.json).toEqual({
      detail: 'Bulk delete needs at least one filter (status, agent_id, session_type or a time range)',
    });
    expect((await api.delete('/sessions/?limit=5')).status).toBe(400);
    expect((await api.delete('/sessions?status=bogus')).status).toBe(422);
    expect((await api.get('/sessions')).json).toHaveLength(6);

    const r = await api.delete('/sessions?status=completed');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ deleted: 4 });
    expect((await api.get('/sessions')).json.map((s: { id: string }) => s.id).sort()).toEqual([
      'failed',
      'live',
    ]);

    await sleep(3);
    const cutoff = new Date().toISOString();
    await sleep(3);
    await create({ id: 'new', agent_id: 'b', session_type: 't', status: 'failed' });
    const old = await api.delete(`/sessions?status=failed&updated_before=${cutoff}`);
    expect(old.json).toEqual({ deleted: 1 });
    expect((await api.get('/sessions')).json.map((s: { id: string }) => s.id).sort()).toEqual([
      'live',
      'new',
    ]);
    expect((await api.delete('/sessions?agent_id=nobody')).json).toEqual({ deleted: 0 });
  });

  it('GET /sessions/{id}/metrics: duration, time in each status, counts; 404 when unknown', async () => {
    await start();
    const s = await create({ id: 'm', agent_id: 'a', session_type: 't' });
    await sleep(30);
    await api.patch('/sessions/m', { status: 'paused' });
    await sleep(30);
    const running = await api.get('/sessions/m/metrics');
    expect(running.status).toBe(200);
    expect(running.json.ended_at).toBeNull();
    expect(running.json.time_in_status_ms.active).toBeGreaterThanOrEqual(25);
    expect(running.json.time_in_status_ms.paused).toBeGreaterThanOrEqual(25);
    const done = (await api.patch('/sessions/m', { status: 'completed' })).json;
    const r = await api.get('/sessions/m/metrics/');
    expect(r.status).toBe(200);
    const m = r.json;
    const endedAt = done.status_history[done.status_history.length - 1].at;
    expect(m).toMatchObject({
      session_id: 'm',
      status: 'completed',
      created_at: s.created_at,
      ended_at: endedAt,
      duration_ms: Date.parse(endedAt) - Date.parse(s.created_at),
      commands: 0,
      command_batches: 0,
      results: 0,
      errors: 0,
      channel_bytes: 0,
      events: 3,
    });
    expect(m.time_in_status_ms.completed).toBe(0);
    expect(m.time_in_status_ms.active + m.time_in_status_ms.paused).toBe(m.duration_ms);
    expect((await api.get('/sessions/nope/metrics')).status).toBe(404);
  });

  it('GET /sessions/metrics: counts by status and duration percentiles over the filtered sessions', async () => {
    await start();
    const empty = await api.get('/sessions/metrics');
    expect(empty.json).toEqual({
      count: 0,
      by_status: {},
      duration_ms: { p50: null, p90: null, p99: null, max: null },
      truncated: false,
    });
    for (let i = 0; i < 5; i++) await create({ id: `a${i}`, agent_id: 'a', session_type: 't' });
    for (let i = 0; i < 3; i++)
      await create({ id: `b${i}`, agent_id: 'b', session_type: 't', status: 'completed' });
    await sleep(20);
    const all = await api.get('/sessions/metrics/');
    expect(all.status).toBe(200);
    expect(all.json.count).toBe(8);
    expect(all.json.by_status).toEqual({ active: 5, completed: 3 });
    expect(all.json.truncated).toBe(false);
    const d = all.json.duration_ms;
    expect(d.p50).toBeLessThanOrEqual(d.p90);
    expect(d.p90).toBeLessThanOrEqual(d.p99);
    expect(d.p99).toBeLessThanOrEqual(d.max);
    expect(d.max).toBeGreaterThanOrEqual(20);
    const b = await api.get('/sessions/metrics?agent_id=b');
    expect(b.json).toMatchObject({ count: 3, by_status: { completed: 3 }, duration_ms: { p50: 0, max: 0 } });
    expect((await api.get('/sessions/metrics?status=active&status=completed')).json.count).toBe(8);
    expect((await api.get('/sessions/metrics?created_after=nope')).status).toBe(422);
  });

  it('GET /sessions/{id}/events: exactly one event per write, oldest first, paged with ?after', async () => {
    await start();
    await create({ id: 'e', agent_id: 'a', session_type: 't' });
    await api.patch('/sessions/e', { context: { a: 1 } });
    await api.patch('/sessions/e', { status: 'paused' });
    await api.put('/sessions/e/context', { b: 2 });
    await create({ id: 'other', agent_id: 'a', session_type: 't' });
    await api.delete('/sessions/e');
    const r = await api.get('/sessions/e/events');
    expect(r.status).toBe(200);
    const log = r.json;
    expect(log.map((e: { type: string }) => e.type)).toEqual([
      'session.created',
      'session.updated',
      'session.updated',
      'session.updated',
      'session.deleted',
    ]);
    expect(log.map((e: { data: { updates?: string[] } }) => e.data.updates)).toEqual([
      undefined,
      ['context'],
      ['status'],
      ['context'],
      undefined,
    ]);
    for (const e of log) expect(Object.keys(e).sort()).toEqual(['at', 'data', 'id', 'session_id', 'type']);
    const ids = log.map((e: { id: number }) => e.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(new Set(ids).size).toBe(5);

    const p1 = await api.get('/sessions/e/events?limit=2');
    expect(p1.json.map((e: { id: number }) => e.id)).toEqual(ids.slice(0, 2));
    expect(p1.headers.get('link')).toBe(`</sessions/e/events?limit=2&after=${ids[1]}>; rel="next"`);
    const p2 = await api.get(`/sessions/e/events?after=${ids[1]}&limit=2`);
    expect(p2.json.map((e: { id: number }) => e.id)).toEqual(ids.slice(2, 4));
    expect((await api.get(`/sessions/e/events?after=${ids[4]}`)).json).toEqual([]);

    const all = await api.get('/sessions/events');
    expect(all.status).toBe(200);
    expect(all.json.filter((e: { session_id: string }) => e.session_id === 'other')).toHaveLength(1);
    expect(all.json).toHaveLength(6);

    expect((await api.get('/sessions/nope/events')).status).toBe(404);
    expect((await api.get('/sessions/e/events?limit=0')).status).toBe(422);
    expect((await api.get('/sessions/e/events?after=-1')).status).toBe(422);
  });
});

/** A POST with a body over the limit: node:http, reading the answer even if the server stops reading. */
function rawPost(port: number, path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        headers: {
          'x-api-key': TEST_KEY,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
