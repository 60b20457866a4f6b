/**
 * A device that says it serves file and stream channels but never answers the server's OPEN: a real aipd on port 0,
 * real HTTP, and a raw WebSocket device. Every call on it ends (open timeout, execute's timeout_ms, interrupt), and
 * no channel or busy mark is left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { Peer } from '../helpers/ws-peer.js';
import { api, until, type Api } from './helpers.js';

const OPEN_TIMEOUT_MS = 1_500;
let server: Awaited<ReturnType<typeof startTestServer>>;
let device: Peer;
let a: Api;

/** OPEN frames the device got (channel frames: 0xC1, then the op; OPEN is 1). */
const opens = (): number =>
  device.frames.filter((f) => 'binary' in f && f.binary[0] === 0xc1 && f.binary[1] === 1).length;

beforeAll(async () => {
  server = await startTestServer({ channelOpenTimeoutMs: OPEN_TIMEOUT_MS, maxChannelsPerSession: 2 });
  a = api(`http://127.0.0.1:${server.port}`, TEST_KEY);
  device = await Peer.connect(server.url);
  device.send({
    type: 'register',
    status: 'ok',
    client_id: 'silent-dev',
    metadata: {
      platform: 'linux',
      aipd_device: {
        version: 1,
        channels: ['file', 'stream'],
        exec: true,
        pty: false,
        root: true,
        ports: [],
      },
    },
  });
  await until(() => server.registry.get('silent-dev') !== undefined, 'the device registered');
});

afterAll(async () => {
  device?.ws.close();
  await server?.close();
});

async function session(): Promise<string> {
  const r = await a.call('POST', '/sessions', { agent_id: 'silent-dev', session_type: 'interactive' });
  expect(r.status, r.text).toBe(201);
  return r.json.id as string;
}

const busy = async (id: string): Promise<number> => (await server.remote.sessions.get(id)).busy;

describe('a device that never answers an OPEN', () => {
  it('fails a file listing with 504 once --channel-open-timeout-ms has passed, and frees the channel', async () => {
    const id = await session();
    const start = server.channels.stats().channels;
    const before = opens();
    const r = await a.call('GET', `/sessions/${id}/files?path=.`);
    expect(r.status).toBe(504);
    expect(r.json.detail).toBe(`Channel open was not answered within ${OPEN_TIMEOUT_MS} ms`);
    expect(opens()).toBe(before + 1);
    expect(server.channels.stats().channels).toBe(start);
    expect(await busy(id)).toBe(0);
  });

  it('ends an execute at its timeout_ms while the OPEN is unanswered (shorter than the open timeout)', async () => {
    const id = await session();
    const r = await a.call('POST', `/sessions/${id}/execute`, {
      mode: 'query',
      code: 'true',
      timeout_ms: 200,
    });
    expect(r.status, r.text).toBe(200);
    expect(r.json.status).toBe('timeout');
    expect(await busy(id)).toBe(0);
  });

  it('ends an execute whose OPEN is unanswered when it is interrupted, and takes the next one', async () => {
    const id = await session();
    const start = server.channels.stats().channels;
    const before = opens();
    const running = a.call('POST', `/sessions/${id}/execute`, {
      mode: 'query',
      code: 'true',
      timeout_ms: 60_000,
    });
    await until(() => opens() === before + 1, 'the OPEN at the device');
    const int = await a.call('POST', `/sessions/${id}/interrupt`);
    expect(int.json).toEqual({ interrupted: true });
    const r = await running;
    expect(r.status, r.text).toBe(200);
    expect(r.json.status).toBe('interrupted');
    expect(server.channels.stats().channels).toBe(start);
    expect(await busy(id)).toBe(0);
    // The session takes another call (it would be 409 "already running" if the first still held it).
    const next = await a.call('POST', `/sessions/${id}/execute`, {
      mode: 'query',
      code: 'true',
      timeout_ms: 100,
    });
    expect(next.json.status).toBe('timeout');
  });

  it("refuses a session's channel over --max-channels-per-session (409), while another session on the device opens its own", async () => {
    const one = await session();
    const two = await session();
    const before = opens();
    const held = [1, 2].map(() => a.call('GET', `/sessions/${one}/files?path=.`));
    await until(() => opens() === before + 2, 'two OPENs at the device');
    const third = await a.call('GET', `/sessions/${one}/files?path=.`);
    expect(third.status).toBe(409);
    expect(third.json.detail).toBe(
      `Too many open channels in session '${one}' (limit 2, --max-channels-per-session)`,
    );
    // The device's connection has room: the other session's channel goes out (and times out, unanswered).
    const other = await a.call('GET', `/sessions/${two}/files?path=.`);
    expect(other.status).toBe(504);
    expect(opens()).toBe(before + 3);
    for (const r of await Promise.all(held)) expect(r.status).toBe(504);
  });
});
