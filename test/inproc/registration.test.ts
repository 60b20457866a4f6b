/** Registration (ufo-aip.md §5) and duplicate ids (§9.1), in-process over the memory transport. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CloseCode, SUBPROTOCOL_MSGPACK } from '../../protocol/index.js';
import { startMemoryServer, TEST_KEY, waitFor, type MemoryHarness } from './harness.js';
import { RefusedError } from './memory-client.js';

describe('registration in-process (ufo-aip.md §5)', () => {
  let h: MemoryHarness;
  beforeEach(async () => {
    h = await startMemoryServer({ registrationTimeoutMs: 60, maxUnregistered: 3 });
  });
  afterEach(async () => {
    await h.close();
  });

  it('runs with no socket: port 0 and the memory transport', () => {
    expect(h.server.port).toBe(0);
    expect(h.server.memory).not.toBeNull();
    expect(h.server.memory).toBe(h.memory);
    expect([...h.memory.connections()]).toHaveLength(0);
  });

  it('refuses a wrong or missing token at connect, with 403 and no connection', () => {
    for (const token of ['wrong', `${TEST_KEY}x`, '', null]) {
      let err: unknown;
      try {
        h.connect('json', { token });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RefusedError);
      expect((err as RefusedError).response).toEqual({ status: 403, body: 'Invalid or missing token' });
    }
    expect(h.memory.connect('token=nope')).toEqual({
      refused: { status: 403, body: 'Invalid or missing token' },
    });
    expect([...h.memory.connections()]).toHaveLength(0);
    expect(h.server.registry.list()).toEqual([]);
  });

  it('confirms a device registration with heartbeat/ok in UFO form and records it', async () => {
    const c = h.connect();
    expect(c.protocol).toBeNull();
    const reply = await c.register('dev-1', {
      metadata: { platform: 'linux', system_info: { hostname: 'h' } },
    });
    expect(reply).toMatchObject({ type: 'heartbeat', status: 'ok', session_id: null, error: null });
    expect(reply.response_id).toMatch(/^[0-9a-f-]{36}$/);
    const raw = c.frames[0]!.raw;
    expect(typeof raw).toBe('string');
    expect(
      (raw as string).startsWith('{"type":"heartbeat","status":"ok","user_request":null,"agent_name":null,'),
    ).toBe(true);
    expect(c.frames[0]!.isBinary).toBe(false);
    expect(h.server.registry.get('dev-1')).toMatchObject({
      clientType: 'device',
      platform: 'linux',
      systemInfo: { hostname: 'h' },
    });
    expect(h.server.registry.list()).toEqual(['dev-1']);
    expect(h.server.registry.stats()).toEqual({ total: 1, device_clients: 1, constellation_clients: 0 });
  });

  it('uses the server default platform when the device names none', async () => {
    await h.connect().register('plain');
    expect(h.server.registry.get('plain')).toMatchObject({
      platform: 'windows',
      systemInfo: null,
      targetId: null,
    });
  });

  it.each([
    ['not JSON', 'hello', /^Registration failed: /],
    ['a JSON array', '[1,2]', /^Registration failed: Message must be a JSON object/],
    [
      'a non-register first message',
      JSON.stringify({ type: 'heartbeat', status: 'ok', client_id: 'x' }),
      /^Registration failed: first message must be 'register', got 'heartbeat'$/,
    ],
    [
      'a register without client_id',
      JSON.stringify({ type: 'register', status: 'ok' }),
      /^Registration failed: client_id is required$/,
    ],
    [
      'a client_id with U+0000 (no store keeps it)',
      JSON.stringify({ type: 'register', status: 'ok', client_id: 'dev\u0000x' }),
      /^Registration failed: client_id must not contain U\+0000 or an unpaired UTF-16 surrogate$/,
    ],
    [
      'a client_id with an unpaired surrogate',
      JSON.stringify({ type: 'register', status: 'ok', client_id: 'dev\ud800' }),
      /^Registration failed: client_id must not contain U\+0000/,
    ],
    [
      'an invalid register',
      JSON.stringify({ type: 'register', status: 'ok', client_id: 5 }),
      /^Registration failed: 1 validation error for ClientMessage\nclient_id\n/,
    ],
  ])('closes with 4000 on %s as the first frame, after an error frame', async (_name, text, expected) => {
    const c = h.connect();
    c.sendText(text);
    const err = await c.next((m) => m.type === 'error');
    expect(err.status).toBe('error');
    expect(err.error).toMatch(expected);
    expect(await c.waitClose()).toBe(CloseCode.REGISTRATION_FAILED);
    expect(c.types()).toEqual(['error']);
    expect(h.server.registry.list()).toEqual([]);
    expect([...h.memory.connections()]).toHaveLength(0);
  });

  it('closes a connection that does not register within the registration timeout (4001)', async () => {
    const c = h.connect();
    const t0 = Date.now();
    const err = await c.next((m) => m.type === 'error', 1000);
    expect(err.error).toBe('Registration timed out after 60 ms');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(50);
    expect(await c.waitClose()).toBe(CloseCode.REGISTRATION_TIMEOUT);
    expect(c.closeReason).toBe('Registration timed out after 60 ms');
  });

  it('caps unregistered connections (4004), and registering frees a slot', async () => {
    const waiting = [h.connect(), h.connect(), h.connect()];
    const extra = h.connect();
    const err = await extra.next((m) => m.type === 'error', 1000, 0);
    expect(err.error).toBe('Too many unregistered connections (limit 3)');
    expect(await extra.waitClose()).toBe(CloseCode.TOO_MANY_UNREGISTERED);
    expect(await waiting[0]!.register('slot')).toMatchObject({ type: 'heartbeat', status: 'ok' });
    expect(await h.connect().register('slot-2')).toMatchObject({ type: 'heartbeat', status: 'ok' });
  });

  it('negotiates msgpack when the client offers aip.msgpack.v1, and answers in binary frames', async () => {
    const c = h.connect('msgpack');
    expect(c.protocol).toBe(SUBPROTOCOL_MSGPACK);
    expect(await c.register('mp-1', { metadata: { platform: 'mobile' } })).toMatchObject({
      type: 'heartbeat',
      status: 'ok',
    });
    expect(c.frames[0]!.isBinary).toBe(true);
    expect(c.frames[0]!.raw).toBeInstanceOf(Uint8Array);
    expect(h.server.registry.get('mp-1')).toMatchObject({ platform: 'mobile' });
    // The offer is a list: msgpack is picked out of it; an unknown offer means JSON (no subprotocol).
    expect(h.connect('msgpack', { protocol: `chat, ${SUBPROTOCOL_MSGPACK}` }).protocol).toBe(
      SUBPROTOCOL_MSGPACK,
    );
    const other = h.connect('json', { protocol: 'chat' });
    expect(other.protocol).toBeNull();
    await other.register('json-1');
    expect(other.frames[0]!.isBinary).toBe(false);
  });

  it('replays frames sent right behind register, once registration is confirmed', async () => {
    const c = h.connect();
    c.send({ type: 'register', status: 'ok', client_id: 'eager' });
    c.send({ type: 'heartbeat', status: 'ok', client_id: 'eager' });
    c.send({ type: 'error', status: 'error', error: 'early' });
    await c.next((m) => m.type === 'error');
    expect(c.types()).toEqual(['heartbeat', 'heartbeat', 'error']);
    expect(c.frames[2]!.msg.error).toBe('early');
  });

  it('refuses a constellation whose target device is not connected (4003)', async () => {
    const k = h.connect();
    const reply = await k.register('k@dev-x', { client_type: 'constellation', target_id: 'dev-x' });
    expect(reply).toMatchObject({ type: 'error', error: "Target device 'dev-x' is not connected" });
    expect(await k.waitClose()).toBe(CloseCode.TARGET_NOT_CONNECTED);
    expect(h.server.registry.list()).toEqual([]);
  });

  it('accepts a constellation without target_id, and one whose target is a connected device', async () => {
    await h.device('dev-1');
    await h.constellation('k1', null);
    await h.constellation('k2@dev-1', 'dev-1');
    expect(h.server.registry.list()).toEqual(['dev-1', 'k1', 'k2@dev-1']);
    expect(h.server.registry.get('k2@dev-1')).toMatchObject({
      clientType: 'constellation',
      targetId: 'dev-1',
      systemInfo: null,
    });
    expect(h.server.registry.stats()).toEqual({ total: 3, device_clients: 1, constellation_clients: 2 });
  });

  it('frees the id when the client leaves, so it can register again', async () => {
    const a = await h.device('again');
    a.close();
    expect(await a.waitClose()).toBe(1000);
    await waitFor(() => h.server.registry.get('again') === undefined);
    expect(await h.connect().register('again')).toMatchObject({ type: 'heartbeat', status: 'ok' });
  });
});

describe('duplicate client ids in-process (ufo-aip.md §9.1)', () => {
  let h: MemoryHarness;
  beforeEach(async () => {
    h = await startMemoryServer();
  });
  afterEach(async () => {
    await h.close();
  });

  it.each(['json', 'msgpack'] as const)(
    'refuses the second %s registration with 4002 and leaves the original untouched',
    async (codec) => {
      const a = h.connect(codec);
      await a.register('dup', { metadata: { platform: 'linux' } });
      const original = h.server.registry.get('dup');
      const b = h.connect(codec);
      const reply = await b.register('dup', { metadata: { platform: 'windows' } });
      expect(reply).toMatchObject({
        type: 'error',
        status: 'error',
        error: "client_id 'dup' is already registered; duplicate registrations are not allowed",
      });
      expect(await b.waitClose()).toBe(CloseCode.DUPLICATE_CLIENT_ID);
      expect(b.closeReason).toBe(
        "client_id 'dup' is already registered; duplicate registrations are not allowed",
      );
      // The original registration, its record and its connection are untouched, and it still works.
      expect(h.server.registry.get('dup')).toBe(original);
      expect(h.server.registry.get('dup')).toMatchObject({ platform: 'linux' });
      expect(h.server.registry.get('dup')?.conn.closed).toBe(false);
      expect(h.server.registry.list()).toEqual(['dup']);
      expect(a.closed).toBe(false);
      expect(a.types()).toEqual(['heartbeat']);
      a.send({ type: 'heartbeat', status: 'ok', client_id: 'dup' });
      expect(await a.next()).toMatchObject({ type: 'heartbeat', status: 'ok' });
      a.send({ type: 'task', status: 'continue', request: '{"steps":[]}' });
      expect(await a.next((m) => m.type === 'task_end')).toMatchObject({ status: 'completed' });
    },
  );

  it('refuses a constellation that takes a device id, and a device that takes a constellation id', async () => {
    await h.device('dev-1');
    const k = h.connect();
    expect(await k.register('dev-1', { client_type: 'constellation' })).toMatchObject({
      error: "client_id 'dev-1' is already registered; duplicate registrations are not allowed",
    });
    expect(await k.waitClose()).toBe(CloseCode.DUPLICATE_CLIENT_ID);
    await h.constellation('k', null);
    const d = h.connect();
    expect((await d.register('k')).type).toBe('error');
    expect(await d.waitClose()).toBe(CloseCode.DUPLICATE_CLIENT_ID);
    expect(h.server.registry.get('dev-1')?.clientType).toBe('device');
    expect(h.server.registry.get('k')?.clientType).toBe('constellation');
  });
});
