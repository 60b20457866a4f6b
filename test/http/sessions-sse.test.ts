/**
 * Live SSE over real HTTP, against memory, SQLite and PostgreSQL: the stream replays the log and goes live with
 * writers running; a client that disconnects mid-stream and resumes with Last-Event-ID gets every event exactly
 * once (compared with the whole log). Also: slow readers (real socket backpressure: resumed in full below the
 * budget, closed and resumable above it), heartbeats, and server shutdown ending open streams.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sseSettings, SSE_HEARTBEAT_MS, SSE_MAX_BUFFERED_BYTES } from '../../src/http/routes/sessions-sse.js';
import type { NewEvent } from '../../src/state/session-store.js';
import { client, sleep, STORE_KINDS, StoreKit, type Client, type TestServer } from './helpers.js';
import { SseClient } from './sse-client.js';

interface LogEvent {
  id: number;
  session_id: string;
  type: string;
  at: string;
  data: Record<string, unknown>;
}

/** The whole log, through the JSON pages. */
async function fullLog(api: Client, path: string): Promise<LogEvent[]> {
  const out: LogEvent[] = [];
  let after = 0;
  for (;;) {
    const r = await api.get(`${path}?after=${after}&limit=1000`);
    expect(r.status, r.text).toBe(200);
    out.push(...r.json);
    // The next page is named by the Link header: a page may be short when its events are large (the size budget).
    if (!r.headers.get('link')) return out;
    after = out[out.length - 1]!.id;
  }
}

/** Creates and patches sessions over HTTP until stopped. */
function writers(api: Client, prefix: string, count = 3) {
  let stop = false;
  let n = 0;
  const loops = Array.from({ length: count }, async (_, w) => {
    while (!stop) {
      const id = `${prefix}-${w}-${n++}`;
      await api.post('/sessions', { id, agent_id: `w${w}`, session_type: 'sse' });
      await api.patch(`/sessions/${id}`, { context: { n } });
    }
  });
  return {
    async stop() {
      stop = true;
      await Promise.all(loops);
    },
  };
}

describe.each(STORE_KINDS)('SSE over real HTTP (%s store)', (kind) => {
  const kit = new StoreKit(kind);
  let server: TestServer;
  let api: Client;
  const streams: SseClient[] = [];
  const open = async (path: string, last?: number) => {
    const s = await SseClient.open(server.port, path, last);
    streams.push(s);
    return s;
  };
  beforeAll(() => kit.setup());
  afterAll(() => kit.teardown());
  afterEach(async () => {
    for (const s of streams.splice(0)) s.close();
    Object.assign(sseSettings, { heartbeatMs: SSE_HEARTBEAT_MS, maxBufferedBytes: SSE_MAX_BUFFERED_BYTES });
    await kit.closeAll();
  });

  it('GET /sessions/events: replay, live, disconnect mid-stream, resume with Last-Event-ID; nothing missed or repeated', async () => {
    server = await kit.start();
    api = client(server);
    for (let i = 0; i < 5; i++) {
      await api.post('/sessions', { id: `h${i}`, agent_id: 'a', session_type: 't' });
      await api.patch(`/sessions/h${i}`, { status: 'paused' });
    }
    const w = writers(api, 'x'); // committing while the stream replays: the feed buffer and the log overlap
    const a = await open('/sessions/events');
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('text/event-stream');
    expect(a.headers['cache-control']).toBe('no-cache');
    await a.until(() => a.messages.length >= 40, 10_000, '40 events');
    a.close(); // mid-stream: the writers go on
    const seen = a.lastId;
    await sleep(100);
    const b = await open('/sessions/events', seen);
    await sleep(100);
    await w.stop();
    await api.post('/sessions', { id: 'final', agent_id: 'a', session_type: 't' });
    const log = await fullLog(api, '/sessions/events');
    const last = log[log.length - 1]!.id;
    await b.until(() => b.lastId >= last, 10_000, `event ${last}`);
    expect([...a.ids(), ...b.ids()]).toEqual(log.map((e) => e.id));
    for (const m of [...a.messages, ...b.messages]) {
      const e = log.find((x) => x.id === m.id)!;
      expect(m.event).toBe(e.type);
      expect(m.data).toEqual(e);
    }
    expect(a.messages.slice(0, 2).map((m) => m.event)).toEqual(['session.created', 'session.updated']);
    // a client with the whole log gets nothing old, then live events
    const c = await open('/sessions/events', last);
    await api.delete('/sessions/final');
    await c.until(() => c.messages.length === 1);
    expect(c.messages[0]).toMatchObject({ event: 'session.deleted', data: { session_id: 'final' } });
    expect(c.messages[0]!.id).toBeGreaterThan(last);
  });

  it('GET /sessions/{id}/events as SSE: one session only, resumable, and 404 for an unknown one', async () => {
    server = await kit.start();
    api = client(server);
    await api.post('/sessions', { id: 'mine', agent_id: 'a', session_type: 't' });
    await api.post('/sessions', { id: 'noise', agent_id: 'a', session_type: 't' });
    const a = await open('/sessions/mine/events');
    await a.until(() => a.messages.length === 1);
    for (let i = 0; i < 5; i++) {
      await api.patch('/sessions/mine', { context: { i } });
      await api.patch('/sessions/noise', { context: { i } });
    }
    await a.until(() => a.messages.length === 6);
    a.close();
    await api.patch('/sessions/mine', { status: 'paused' });
    await api.put('/sessions/mine/context', { fresh: true });
    await api.delete('/sessions/mine');
    const b = await open('/sessions/mine/events/', a.lastId);
    const log = await fullLog(api, '/sessions/mine/events');
    expect(log).toHaveLength(9);
    await b.until(() => b.lastId === log[8]!.id);
    expect([...a.ids(), ...b.ids()]).toEqual(log.map((e) => e.id));
    expect(b.messages.map((m) => m.event)).toEqual(['session.updated', 'session.updated', 'session.deleted']);
    expect([...a.messages, ...b.messages].every((m) => m.data.session_id === 'mine')).toBe(true);

    const unknown = await open('/sessions/never/events');
    expect(unknown.status).toBe(404);
    const bad = await open('/sessions/events', -1);
    expect(bad.status).toBe(422);
  });

  it('sends keepalive comments, and ends open streams when the server closes', async () => {
    sseSettings.heartbeatMs = 50;
    server = await kit.start();
    api = client(server);
    const a = await open('/sessions/events');
    await a.until(() => a.comments.filter((c) => c === 'keepalive').length >= 2, 5_000, 'keepalives');
    await server.close();
    await a.whenEnded(5_000);
  });

  it('a slow reader below the budget gets everything once it reads again (socket backpressure, then drain)', async () => {
    sseSettings.maxBufferedBytes = 512 * 1024 * 1024;
    server = await kit.start({ eventDataMaxBytes: 64 * 1024 });
    api = client(server);
    await api.post('/sessions', { id: 'bulk', agent_id: 'a', session_type: 't' });
    const a = await open('/sessions/events');
    await a.until(() => a.messages.length === 1);
    a.pause();
    await appendBulk(server, 'bulk', 600, 16 * 1024); // ~10 MB: more than the socket buffers hold
    await sleep(200);
    a.resume();
    const log = await fullLog(api, '/sessions/events');
    await a.until(() => a.lastId === log[log.length - 1]!.id, 20_000, 'the last bulk event');
    expect(a.ids()).toEqual(log.map((e) => e.id));
    expect(a.ended).toBe(false);
    await api.patch('/sessions/bulk', { status: 'paused' });
    await a.until(() => a.messages[a.messages.length - 1]!.event === 'session.updated');
  });

  it('pages of large events stop at --event-page-max-bytes: JSON pages with a Link, SSE replay and /logs get all', async () => {
    server = await kit.start({ eventDataMaxBytes: 64 * 1024, eventPageMaxBytes: 100 * 1024 });
    api = client(server);
    await api.post('/sessions', { id: 'big', agent_id: 'a', session_type: 't' });
    await appendBulk(server, 'big', 30, 16 * 1024); // ~490 KB of event data
    const first = await api.get('/sessions/big/events?limit=1000');
    const pageChars = (evs: LogEvent[]): number => evs.reduce((n, e) => n + JSON.stringify(e.data).length, 0);
    expect(first.json.length).toBeGreaterThan(1);
    expect(first.json.length).toBeLessThan(10); // cut by size, far below the count limit
    expect(pageChars(first.json)).toBeLessThanOrEqual(100 * 1024);
    expect(first.headers.get('link')).toContain(`after=${first.json.at(-1).id}`);
    const log = await fullLog(api, '/sessions/big/events');
    expect(log.map((e) => e.data.n ?? 'created')).toEqual([
      'created',
      ...Array.from({ length: 30 }, (_, i) => i),
    ]);
    expect(await fullLog(api, '/sessions/events')).toEqual(log);
    // the SSE replay reads the same pages and goes on past each cut
    const sse = await open('/sessions/big/events');
    await sse.until(() => sse.lastId === log.at(-1)!.id, 10_000, 'the replay');
    expect(sse.ids()).toEqual(log.map((e) => e.id));
    // /logs streams every line
    const lines = (await api.get('/sessions/big/logs')).text.trim().split('\n');
    expect(lines).toHaveLength(31);
    expect(lines.at(-1)).toContain('"n":29');
  });

  it('a slow reader over the budget is closed, and resumes with Last-Event-ID losing nothing', async () => {
    server = await kit.start({ eventDataMaxBytes: 64 * 1024 });
    api = client(server);
    await api.post('/sessions', { id: 'bulk', agent_id: 'a', session_type: 't' });
    const a = await open('/sessions/bulk/events');
    await a.until(() => a.messages.length === 1);
    a.pause();
    await appendBulk(server, 'bulk', 600, 16 * 1024);
    await sleep(300);
    a.resume();
    await a.whenEnded(10_000);
    const log = await fullLog(api, '/sessions/bulk/events');
    expect(a.lastId).toBeLessThan(log[log.length - 1]!.id);
    const b = await open('/sessions/bulk/events', a.lastId);
    await b.until(() => b.lastId === log[log.length - 1]!.id, 20_000, 'the rest of the log');
    expect([...a.ids(), ...b.ids()]).toEqual(log.map((e) => e.id));
  });
});

/** Appends `n` events of about `bytes` each to a session's log, in batches, through the service. */
async function appendBulk(server: TestServer, id: string, n: number, bytes: number): Promise<void> {
  for (let i = 0; i < n; i += 50) {
    const batch: NewEvent[] = [];
    for (let j = i; j < Math.min(n, i + 50); j++)
      batch.push(server.sessions.event(id, 'test.bulk', { n: j, pad: 'x'.repeat(bytes) }));
    await server.sessions.appendEvents(batch);
  }
}
