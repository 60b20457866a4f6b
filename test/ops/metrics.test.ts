/**
 * GET /metrics over real sockets: a device and a requester register over WebSockets, three tasks run (two complete,
 * one fails), a duplicate registration is refused and a few HTTP calls are made; then the Prometheus text is
 * parsed and every counter is checked against what happened. Also: auth (API key, --metrics-token, neither),
 * `--metrics off`, /readyz, and a request id on every answer.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { constellationTask, startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { RawClient } from '../helpers/raw-client.js';
import {
  parseExposition as parse,
  sumOf,
  valueOf as value,
  type Exposition,
} from '../../src/lib/prom-text.js';

const TOKEN = 'metrics-token-0123456789';

type Server = Awaited<ReturnType<typeof startTestServer>>;
const servers: Server[] = [];
const sockets: RawClient[] = [];
afterEach(async () => {
  await Promise.all(sockets.splice(0).map((s) => s.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(config: Parameters<typeof startTestServer>[0] = {}): Promise<Server & { base: string }> {
  const s = await startTestServer({ metricsToken: TOKEN, ...config });
  servers.push(s);
  return Object.assign(s, { base: `http://127.0.0.1:${s.port}` });
}

async function connect(
  url: string,
  id: string,
  extra: Record<string, unknown> = {},
  codec: 'json' | 'msgpack' = 'json',
) {
  const c = await RawClient.connect(url, codec);
  sockets.push(c);
  const reply = await c.register(id, extra);
  return { c, reply };
}

function typeOf(e: Exposition, name: string): string | undefined {
  return e.types.get(name);
}

async function scrape(base: string, headers: Record<string, string> = { 'x-api-key': TEST_KEY }) {
  const r = await fetch(`${base}/metrics`, { headers });
  return {
    status: r.status,
    type: r.headers.get('content-type'),
    text: await r.text(),
    id: r.headers.get('x-request-id'),
  };
}

describe('GET /metrics', () => {
  it('counts what a real run did: connections, registrations and refusals, tasks, commands and their round trips, HTTP, store writes', async () => {
    const s = await start({ commandTimeoutMs: 5_000 });
    const { c: device } = await connect(s.url, 'dev-1', { metadata: { platform: 'linux' } });
    const { c: requester } = await connect(
      s.url,
      'k@dev-1',
      { client_type: 'constellation', target_id: 'dev-1' },
      'msgpack',
    );
    // the same client id again: refused (DUPLICATE_CLIENT_ID)
    const dup = await RawClient.connect(s.url);
    sockets.push(dup);
    await dup.register('dev-1');
    await dup.waitClose();

    const run = (id: string, steps: number) =>
      requester.send(constellationTask('k@dev-1', 'dev-1', steps, { task_name: id, session_id: id }));
    // two tasks of 3 steps complete; one fails at its first step
    const stopAuto = device.autoAnswer();
    run('t1', 3);
    await requester.next((m) => m.type === 'task_end' && m.session_id === 't1');
    run('t2', 3);
    await requester.next((m) => m.type === 'task_end' && m.session_id === 't2');
    stopAuto();
    run('t3', 2);
    device.answer(await device.next((m) => m.type === 'command' && m.session_id === 't3'), 'failure');
    const failed = await requester.next((m) => m.type === 'task_end' && m.session_id === 't3');
    expect(failed.status).toBe('failed');

    for (let i = 0; i < 4; i++)
      expect((await fetch(`${s.base}/sessions/t1`, { headers: { 'x-api-key': TEST_KEY } })).status).toBe(200);
    expect((await fetch(`${s.base}/sessions/nope`, { headers: { 'x-api-key': TEST_KEY } })).status).toBe(404);
    expect((await fetch(`${s.base}/no/such/route`)).status).toBe(404);

    const r = await scrape(s.base);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const m = parse(r.text);
    expect(value(m, 'aipd_connections', { role: 'device', codec: 'json' })).toBe(1);
    expect(value(m, 'aipd_connections', { role: 'constellation', codec: 'msgpack' })).toBe(1);
    expect(value(m, 'aipd_registrations_total', { role: 'device' })).toBe(1);
    expect(value(m, 'aipd_registrations_refused_total', { reason: 'DUPLICATE_CLIENT_ID' })).toBe(1);
    expect(value(m, 'aipd_tasks_started_total')).toBe(3);
    expect(value(m, 'aipd_tasks_ended_total', { status: 'completed' })).toBe(2);
    expect(value(m, 'aipd_tasks_ended_total', { status: 'failed' })).toBe(1);
    expect(value(m, 'aipd_commands_sent_total')).toBe(7);
    expect(typeOf(m, 'aipd_command_rtt_seconds')).toBe('histogram');
    expect(value(m, 'aipd_command_rtt_seconds_count')).toBe(7);
    expect(value(m, 'aipd_command_rtt_seconds_sum')).toBeGreaterThan(0);
    expect(value(m, 'aipd_command_rtt_seconds_bucket', { le: '+Inf' })).toBe(7);
    // results → the same session's next command: 2 in each 3-step task, none in t3 (it failed at its only answer)
    expect(typeOf(m, 'aipd_step_turnaround_seconds')).toBe('histogram');
    expect(value(m, 'aipd_step_turnaround_seconds_count')).toBe(4);
    expect(value(m, 'aipd_step_turnaround_seconds_sum')).toBeGreaterThan(0);
    expect(value(m, 'aipd_step_turnaround_seconds_bucket', { le: '+Inf' })).toBe(4);
    expect(
      value(m, 'aipd_http_requests_total', { method: 'GET', route: '/sessions/:id', status: '200' }),
    ).toBe(4);
    expect(
      value(m, 'aipd_http_requests_total', { method: 'GET', route: '/sessions/:id', status: '404' }),
    ).toBe(1);
    expect(value(m, 'aipd_http_requests_total', { route: 'none', status: '404' })).toBe(1);
    expect(value(m, 'aipd_http_request_duration_seconds_count', { route: '/sessions/:id' })).toBe(5);
    // 3 tasks: each created, then ended (and more updates); every write timed
    expect(value(m, 'aipd_store_write_duration_seconds_count', { op: 'create' })).toBe(3);
    expect(value(m, 'aipd_store_write_duration_seconds_count', { op: 'update' })).toBeGreaterThanOrEqual(3);
    expect(sumOf(m, 'aipd_sessions_live')).toBe(0); // all three ended
    expect(value(m, 'aipd_slow_consumer_closes_total')).toBe(0);
    // process metrics from prom-client's default collectors
    expect(typeOf(m, 'nodejs_eventloop_lag_seconds')).toBe('gauge');
    expect(typeOf(m, 'nodejs_gc_duration_seconds')).toBe('histogram');
    expect(typeOf(m, 'process_cpu_user_seconds_total')).toBe('counter');
    expect(typeOf(m, 'aipd_outbound_queued_bytes')).toBe('gauge');

    // the device leaves: its connection gauge drops, the disconnect is counted
    await device.close();
    await expect
      .poll(async () =>
        value(parse((await scrape(s.base)).text), 'aipd_connections', { role: 'device', codec: 'json' }),
      )
      .toBe(0);
    expect(
      value(parse((await scrape(s.base)).text), 'aipd_disconnects_total', {
        role: 'device',
        reason: 'disconnected',
      }),
    ).toBe(1);
  });

  it('counts live sessions by type and status from the store, and channels by kind', async () => {
    const s = await start();
    const h = { 'x-api-key': TEST_KEY, 'content-type': 'application/json' };
    for (const id of ['a', 'b'])
      await fetch(`${s.base}/sessions`, {
        method: 'POST',
        headers: h,
        body: JSON.stringify({ id, agent_id: 'x', session_type: 'chat' }),
      });
    await fetch(`${s.base}/sessions/b`, {
      method: 'PATCH',
      headers: h,
      body: JSON.stringify({ status: 'paused' }),
    });
    await fetch(`${s.base}/sessions`, {
      method: 'POST',
      headers: h,
      body: JSON.stringify({ id: 'c', agent_id: 'x', session_type: 'chat', status: 'completed' }),
    });
    const m = parse((await scrape(s.base)).text);
    expect(value(m, 'aipd_sessions_live', { type: 'chat', status: 'active' })).toBe(1);
    expect(value(m, 'aipd_sessions_live', { type: 'chat', status: 'paused' })).toBe(1);
    expect(m.samples.filter((x) => x.name === 'aipd_sessions_live')).toHaveLength(2);
    // channels come from the same lifecycle events the channel router emits
    s.events.emit('channel.opened', { sessionId: 'a', kind: 'file' });
    s.events.emit('channel.closed', { sessionId: 'a', kind: 'file', bytes: 1234 });
    const m2 = parse((await scrape(s.base)).text);
    expect(value(m2, 'aipd_channels_opened_total', { kind: 'file' })).toBe(1);
    expect(value(m2, 'aipd_channels_open', { kind: 'file' })).toBe(0);
    expect(value(m2, 'aipd_channel_bytes_total', { kind: 'file' })).toBe(1234);
  });

  it('needs the API key or the metrics token; --metrics off answers 404', async () => {
    const s = await start();
    expect((await scrape(s.base, {})).status).toBe(401);
    expect((await scrape(s.base, { 'x-api-key': 'wrong' })).status).toBe(401);
    expect((await scrape(s.base, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await scrape(s.base, { authorization: `Bearer ${TEST_KEY}` })).status).toBe(200);
    const off = await start({ metrics: 'off' });
    const r = await scrape(off.base);
    expect(r.status).toBe(404);
    expect(r.text).toContain('--metrics off');
  });
});

describe('readiness and request ids', () => {
  it('/readyz reports the store; /healthz stays liveness only', async () => {
    const s = await start();
    const r = await fetch(`${s.base}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ready', checks: { store: true } });
    expect(await (await fetch(`${s.base}/healthz`)).json()).toEqual({ status: 'ok' });
  });

  it('/readyz is 503 once the store no longer answers', async () => {
    const s = await start({
      store: 'sqlite',
      dataDir: `${process.env.TMPDIR ?? '/tmp'}/aipd-readyz-${process.pid}-${Date.now()}`,
    });
    expect((await fetch(`${s.base}/readyz`)).status).toBe(200);
    // close the database under the running server: the store can no longer answer
    await s.sessions.store.close();
    const r = await fetch(`${s.base}/readyz`);
    expect(r.status).toBe(503);
    expect(await r.json()).toEqual({ status: 'unready', checks: { store: false } });
  });

  it('every answer carries X-Request-Id: a new one, or the client’s own when it is sane', async () => {
    const s = await start();
    const seen = new Set<string>();
    for (const [path, headers] of [
      ['/healthz', {}],
      ['/sessions', { 'x-api-key': TEST_KEY }],
      ['/sessions', {}], // 422: no key
      ['/nothing/here', {}], // 404
    ] as const) {
      const r = await fetch(`${s.base}${path}`, { headers });
      const id = r.headers.get('x-request-id');
      expect(id, path).toMatch(/^[0-9a-f-]{36}$/);
      seen.add(id!);
    }
    expect(seen.size).toBe(4);
    const mine = await fetch(`${s.base}/healthz`, { headers: { 'x-request-id': 'trace-42.a' } });
    expect(mine.headers.get('x-request-id')).toBe('trace-42.a');
    const bad = await fetch(`${s.base}/healthz`, { headers: { 'x-request-id': 'no spaces allowed' } });
    expect(bad.headers.get('x-request-id')).not.toBe('no spaces allowed');
    // the transport's own answers too: a body over the limit gets 413 from the transport
    const big = await fetch(`${s.base}/sessions`, {
      method: 'POST',
      headers: { 'x-api-key': TEST_KEY, 'content-type': 'application/json' },
      body: 'x'.repeat(5 * 1024 * 1024),
    });
    expect(big.status).toBe(413);
    expect(big.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
