import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CloseCode } from '../../protocol/index.js';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { RawClient } from '../helpers/raw-client.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

describe('registration (ufo-aip.md §5)', () => {
  let server: Server;
  const clients: RawClient[] = [];
  const connect = async (url = server.url, codec: 'json' | 'msgpack' = 'json') => {
    const c = await RawClient.connect(url, codec);
    clients.push(c);
    return c;
  };
  beforeEach(async () => {
    server = await startTestServer({ registrationTimeoutMs: 300, maxUnregistered: 3 });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await server.close();
  });

  it('refuses a wrong or missing token with HTTP 403 on the upgrade', async () => {
    await expect(RawClient.connect(`ws://127.0.0.1:${server.port}/ws?token=wrong`)).rejects.toThrow(
      'HTTP 403',
    );
    await expect(RawClient.connect(`ws://127.0.0.1:${server.port}/ws`)).rejects.toThrow('HTTP 403');
    await expect(RawClient.connect(`ws://127.0.0.1:${server.port}/ws?token=${TEST_KEY}x`)).rejects.toThrow(
      'HTTP 403',
    );
  });

  it('confirms a device registration with heartbeat/ok in UFO form', async () => {
    const c = await connect();
    const reply = await c.register('dev-1', {
      metadata: { platform: 'linux', system_info: { hostname: 'h' } },
    });
    expect(reply).toMatchObject({ type: 'heartbeat', status: 'ok', session_id: null, error: null });
    expect(reply.response_id).toMatch(/^[0-9a-f-]{36}$/);
    const raw = c.frames[0]!.raw as string;
    expect(raw.startsWith('{"type":"heartbeat","status":"ok","user_request":null,"agent_name":null,')).toBe(
      true,
    );
    expect(server.registry.get('dev-1')).toMatchObject({
      clientType: 'device',
      platform: 'linux',
      systemInfo: { hostname: 'h' },
    });
  });

  it.each([
    ['not JSON', 'hello'],
    ['a JSON array', '[1,2]'],
    ['a non-register first message', JSON.stringify({ type: 'heartbeat', status: 'ok', client_id: 'x' })],
    ['a register without client_id', JSON.stringify({ type: 'register', status: 'ok' })],
    ['an invalid register', JSON.stringify({ type: 'register', status: 'ok', client_id: 5 })],
  ])('closes with %s as the first frame, after an error frame', async (_name, text) => {
    const c = await connect();
    c.sendText(text);
    const err = await c.next((m) => m.type === 'error');
    expect(err.status).toBe('error');
    expect(err.error).toMatch(/^Registration failed: /);
    expect(await c.waitClose()).toBe(CloseCode.REGISTRATION_FAILED);
    expect(server.registry.list()).toEqual([]);
  });

  it('refuses metadata over --max-registration-metadata-bytes (64 KiB), and takes metadata just under it', async () => {
    const big = await connect();
    big.sendText(
      JSON.stringify({
        type: 'register',
        status: 'ok',
        client_id: 'meta-big',
        metadata: { system_info: { junk: 'x'.repeat(2 * 1024 * 1024) } },
      }),
    );
    expect((await big.next((m) => m.type === 'error')).error).toBe(
      'Registration failed: metadata is over 65536 bytes as JSON (--max-registration-metadata-bytes)',
    );
    expect(await big.waitClose()).toBe(CloseCode.REGISTRATION_FAILED);
    const fits = await connect();
    const reply = await fits.register('meta-fits', {
      metadata: { system_info: { notes: 'y'.repeat(60_000) } },
    });
    expect(reply).toMatchObject({ type: 'heartbeat', status: 'ok' });
    expect(server.registry.list()).toEqual(['meta-fits']);
  });

  it('refuses a duplicate client_id and leaves the original connection untouched', async () => {
    const a = await connect();
    await a.register('dup');
    const b = await connect();
    const reply = await b.register('dup');
    expect(reply).toMatchObject({
      type: 'error',
      error: "client_id 'dup' is already registered; duplicate registrations are not allowed",
    });
    expect(await b.waitClose()).toBe(CloseCode.DUPLICATE_CLIENT_ID);
    expect(server.registry.get('dup')?.conn.closed).toBe(false);
    a.send({ type: 'heartbeat', status: 'ok', client_id: 'dup' });
    expect(await a.next((m) => m.type === 'heartbeat')).toMatchObject({ status: 'ok' });
  });

  it('frees the id when the client leaves, so it can register again', async () => {
    const a = await connect();
    await a.register('again');
    await a.close();
    await waitFor(() => server.registry.get('again') === undefined);
    const b = await connect();
    expect(await b.register('again')).toMatchObject({ type: 'heartbeat', status: 'ok' });
  });

  it('refuses a constellation whose target device is not connected', async () => {
    const k = await connect();
    const reply = await k.register('k@dev-x', { client_type: 'constellation', target_id: 'dev-x' });
    expect(reply).toMatchObject({ type: 'error', error: "Target device 'dev-x' is not connected" });
    expect(await k.waitClose()).toBe(CloseCode.TARGET_NOT_CONNECTED);
  });

  it('cuts a long non-ASCII close reason on a character boundary: the client sees the close code, not 1006', async () => {
    const k = await connect();
    const target = 'x' + 'ü'.repeat(100); // quoted in the reason; byte 123 falls inside a 'ü'
    await k.register('k@ü', { client_type: 'constellation', target_id: target });
    expect(await k.waitClose()).toBe(CloseCode.TARGET_NOT_CONNECTED);
    expect(Buffer.byteLength(k.closeReason)).toBeLessThanOrEqual(123);
    expect(k.closeReason).toMatch(/^Target device 'xü+$/);
  });

  it('accepts a constellation without target_id, and one whose target is a connected device', async () => {
    const d = await connect();
    await d.register('dev-1');
    const k1 = await connect();
    expect(await k1.register('k1', { client_type: 'constellation' })).toMatchObject({ status: 'ok' });
    const k2 = await connect();
    expect(await k2.register('k2@dev-1', { client_type: 'constellation', target_id: 'dev-1' })).toMatchObject(
      { status: 'ok' },
    );
  });

  it('closes a connection that does not register within the registration timeout', async () => {
    const c = await connect();
    const err = await c.next((m) => m.type === 'error', 3000);
    expect(err.error).toBe('Registration timed out after 300 ms');
    expect(await c.waitClose()).toBe(CloseCode.REGISTRATION_TIMEOUT);
  });

  it('caps the number of unregistered sockets', async () => {
    const waiting = await Promise.all([connect(), connect(), connect()]);
    const extra = await connect();
    const err = await extra.next((m) => m.type === 'error', 5000, 0);
    expect(err.error).toBe('Too many unregistered connections (limit 3)');
    expect(await extra.waitClose()).toBe(CloseCode.TOO_MANY_UNREGISTERED);
    // Registering frees a slot.
    await waiting[0].register('slot');
    const next = await connect();
    expect(await next.register('slot-2')).toMatchObject({ status: 'ok' });
  });

  it('registers over msgpack when the client offers aip.msgpack.v1', async () => {
    const c = await connect(server.url, 'msgpack');
    expect(c.ws.protocol).toBe('aip.msgpack.v1');
    const reply = await c.register('mp-1');
    expect(reply).toMatchObject({ type: 'heartbeat', status: 'ok' });
    expect(c.frames[0]!.isBinary).toBe(true);
  });
});

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
}
