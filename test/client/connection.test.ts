import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AipControllerClient,
  AipDeviceClient,
  type DeviceClientOptions,
  type DisconnectInfo,
} from '../../src/client/index.js';
import { SUBPROTOCOL_MSGPACK } from '../../protocol/index.js';
import { MockAipServer } from './mock-server.js';

let server: MockAipServer | null = null;
const clients: (AipDeviceClient | AipControllerClient)[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server?.close();
  server = null;
});

function track<T extends AipDeviceClient | AipControllerClient>(c: T): T {
  clients.push(c);
  return c;
}

const once = <T>(
  c: AipDeviceClient | AipControllerClient,
  ev: 'registered' | 'disconnected' | 'error',
  pred: (x: T) => boolean = () => true,
) =>
  new Promise<T>((resolve) => {
    const fn = (x: T) => {
      if (!pred(x)) return;
      c.off(ev, fn as never);
      resolve(x);
    };
    c.on(ev, fn as never);
  });

describe('registration', () => {
  it('resolves connect once the server accepts, with device metadata', async () => {
    server = await MockAipServer.start();
    const c = track(
      new AipDeviceClient({
        url: server.url,
        token: 'secret',
        clientId: 'd1',
        systemInfo: { device_id: 'd1', cpu_count: 2 },
      }),
    );
    const registered = once<{ reconnected: boolean }>(c, 'registered');
    await c.connect();
    expect(await registered).toEqual({ reconnected: false });
    expect(c.connected).toBe(true);
    const reg = server.registrations[0]!;
    expect(reg).toMatchObject({ type: 'register', status: 'ok', client_type: 'device', client_id: 'd1' });
    expect(reg.metadata).toMatchObject({ platform: 'linux', system_info: { device_id: 'd1', cpu_count: 2 } });
  });

  it('collects system info when none is given', async () => {
    server = await MockAipServer.start();
    const c = track(
      new AipDeviceClient({ url: server.url, token: 'secret', clientId: 'd1', platform: 'mobile' }),
    );
    await c.connect();
    const info = server.registrations[0]!.metadata!.system_info as Record<string, unknown>;
    expect(info).toMatchObject({ device_id: 'd1', platform_type: 'mobile', schema_version: '1.0' });
    expect(typeof info.cpu_count).toBe('number');
  });

  it('rejects connect with the error text of a refused registration', async () => {
    const text = "client_id 'd1' is already registered; duplicate registrations are not allowed";
    server = await MockAipServer.start({ register: () => text });
    const c = track(new AipDeviceClient({ url: server.url, token: 'secret', clientId: 'd1' }));
    await expect(c.connect()).rejects.toThrow(text);
    expect(c.connected).toBe(false);
  });

  it('rejects connect when the token is wrong (handshake refused)', async () => {
    server = await MockAipServer.start();
    const c = track(new AipDeviceClient({ url: server.url, token: 'wrong', clientId: 'd1' }));
    await expect(c.connect()).rejects.toThrow(/403/);
  });
});

describe('framing', () => {
  it('uses text frames with the JSON codec', async () => {
    server = await MockAipServer.start();
    const c = track(new AipDeviceClient({ url: server.url, token: 'secret', clientId: 'd1' }));
    await c.connect();
    expect(server.last.protocol).toBe('');
    server.last.send({ type: 'command', status: 'continue', session_id: 's', response_id: 'r', actions: [] });
    await server.next((m) => m.type === 'command_results');
    expect(server.last.binary).toEqual([false]);
  });

  it('negotiates aip.msgpack.v1 and sends binary frames in msgpack mode', async () => {
    server = await MockAipServer.start();
    const c = track(
      new AipDeviceClient({
        url: server.url,
        token: 'secret',
        clientId: 'd1',
        codec: 'msgpack',
        onCommand: (cmd) => [{ status: 'success', result: { echo: cmd.actions?.[0]?.parameters } }],
      }),
    );
    await c.connect();
    expect(server.last.protocol).toBe(SUBPROTOCOL_MSGPACK);
    server.last.send({
      type: 'command',
      status: 'continue',
      session_id: 's',
      response_id: 'r9',
      actions: [{ tool_name: 't', tool_type: 'action', call_id: 'c', parameters: { n: 7, list: [1, 'a'] } }],
    });
    const { msg } = await server.next((m) => m.type === 'command_results');
    expect(msg.prev_response_id).toBe('r9');
    expect(msg.action_results?.[0]).toMatchObject({
      status: 'success',
      call_id: 'c',
      result: { echo: { n: 7, list: [1, 'a'] } },
    });
    expect(server.last.binary).toEqual([true]);
  });

  it('emits error for a bad frame and keeps working', async () => {
    server = await MockAipServer.start();
    const c = track(new AipDeviceClient({ url: server.url, token: 'secret', clientId: 'd1' }));
    await c.connect();
    const err = once<Error>(c, 'error');
    server.last.ws.send('{not json');
    server.last.ws.send(JSON.stringify({ type: 'nonsense', status: 'ok' }));
    expect((await err).message).toMatch(/invalid server frame/i);
    server.last.send({
      type: 'command',
      status: 'continue',
      session_id: 's',
      response_id: 'after',
      actions: [],
    });
    const { msg } = await server.next((m) => m.type === 'command_results');
    expect(msg.prev_response_id).toBe('after');
  });

  it('does not crash on a bad frame when nobody listens for error', async () => {
    server = await MockAipServer.start();
    const c = track(new AipDeviceClient({ url: server.url, token: 'secret', clientId: 'd1' }));
    await c.connect();
    server.last.ws.send(Buffer.from([0xff, 0x00]), { binary: true });
    server.last.send({
      type: 'command',
      status: 'continue',
      session_id: 's',
      response_id: 'ok',
      actions: [],
    });
    await server.next((m) => m.prev_response_id === 'ok');
    expect(c.connected).toBe(true);
  });

  it('hands binary frames to a binary frame handler before AIP decoding, and sends raw binary frames', async () => {
    server = await MockAipServer.start();
    const c = track(
      new AipDeviceClient({ url: server.url, token: 'secret', clientId: 'd1', codec: 'msgpack' }),
    );
    await c.connect();
    const seen: number[][] = [];
    c.setBinaryFrameHandler((bytes) => bytes[0] === 0xc1 && seen.push([...bytes]) > 0);
    let errors = 0;
    c.on('error', () => errors++);
    server.last.ws.send(Buffer.from([0xc1, 1, 2, 3]), { binary: true });
    server.last.send({
      type: 'command',
      status: 'continue',
      session_id: 's',
      response_id: 'bin',
      actions: [],
    });
    await server.next((m) => m.prev_response_id === 'bin');
    expect(seen).toEqual([[0xc1, 1, 2, 3]]);
    expect(errors).toBe(0);
    expect(c.sendBinaryFrame(Uint8Array.from([0xc1, 9]))).toBe(true);
    await vi.waitFor(() => expect(server!.last.raw).toEqual([Buffer.from([0xc1, 9])]));
  });

  it('sends periodic heartbeats when configured', async () => {
    server = await MockAipServer.start();
    const c = track(
      new AipControllerClient({ url: server.url, token: 'secret', clientId: 'k', heartbeatIntervalMs: 20 }),
    );
    await c.connect();
    const a = await server.next((m) => m.type === 'heartbeat');
    const b = await server.next((m) => m.type === 'heartbeat');
    expect(a.msg).toMatchObject({ status: 'ok', client_type: 'constellation', client_id: 'k' });
    expect(b.msg.type).toBe('heartbeat');
  });
});

/** A tracked device client of `server` that reconnects within tens of ms; `opts` adds to or overrides that. */
function reconnectingDevice(opts: Partial<DeviceClientOptions> = {}): AipDeviceClient {
  return track(
    new AipDeviceClient({
      url: server!.url,
      token: 'secret',
      clientId: 'd1',
      reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
      ...opts,
    }),
  );
}

describe('disconnects and reconnection', () => {
  it('rejects pending ACK and task_end waiters when the connection drops', async () => {
    server = await MockAipServer.start();
    const c = track(
      new AipDeviceClient({ url: server.url, token: 'secret', clientId: 'd1', reconnect: false }),
    );
    await c.connect();
    const ack = c.requestTask({ request: 'never acked' });
    const end = c.waitTaskEnd('some-session');
    await server.next((m) => m.type === 'task');
    const gone = once<DisconnectInfo>(c, 'disconnected');
    server.last.ws.close(1001, 'bye');
    await expect(ack).rejects.toThrow(/Connection lost \(code 1001: bye; closed\)/);
    await expect(end).rejects.toThrow(/Connection lost/);
    expect(await gone).toEqual({ code: 1001, reason: 'bye', willReconnect: false });
    await expect(c.requestTask({ request: 'later' })).rejects.toThrow(/Not connected/);
  });

  it('reconnects with backoff and re-registers after the server drops the socket', async () => {
    server = await MockAipServer.start();
    const c = track(
      new AipDeviceClient({
        url: server.url,
        token: 'secret',
        clientId: 'd1',
        reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
      }),
    );
    const attempts: number[] = [];
    c.on('reconnecting', (i) => attempts.push(i.attempt));
    await c.connect();
    const drop = once<DisconnectInfo>(c, 'disconnected');
    const again = once<{ reconnected: boolean }>(c, 'registered');
    server.last.ws.terminate();
    expect((await drop).willReconnect).toBe(true);
    expect(await again).toEqual({ reconnected: true });
    expect(attempts).toEqual([1]);
    expect(server.registrations).toHaveLength(2);
    expect(server.registrations[1]).toMatchObject({ type: 'register', client_id: 'd1' });
    // The new socket works.
    server.last.send({
      type: 'command',
      status: 'continue',
      session_id: 's',
      response_id: 'post',
      actions: [],
    });
    const { conn } = await server.next((m) => m.prev_response_id === 'post');
    expect(conn).toBe(server.last);
  });

  it('keeps a task_end waiter through a reconnect: the task_end sent after the new registration resolves it', async () => {
    server = await MockAipServer.start();
    const c = reconnectingDevice();
    await c.connect();
    const before = c.waitTaskEnd('s1');
    const settled: string[] = [];
    void before.then(
      () => settled.push('resolved'),
      (e: Error) => settled.push(e.message),
    );
    const drop = once<DisconnectInfo>(c, 'disconnected');
    server.last.ws.terminate();
    expect((await drop).willReconnect).toBe(true);
    // Asked while it reconnects (e.g. the ACK came just before the drop): kept as well.
    const during = c.waitTaskEnd('s2');
    await once(c, 'registered');
    expect(settled).toEqual([]);
    const end = { type: 'task_end', status: 'completed', result: { ok: true } } as const;
    server.last.send({ ...end, session_id: 's1' });
    server.last.send({ ...end, session_id: 's2' });
    expect(await before).toMatchObject({ type: 'task_end', status: 'completed', session_id: 's1' });
    expect(await during).toMatchObject({ type: 'task_end', session_id: 's2' });
  });

  it('rejects a kept waiter once resumeWaitMs has passed since the drop, naming the session and the bound', async () => {
    server = await MockAipServer.start();
    const c = reconnectingDevice({ resumeWaitMs: 300 });
    await c.connect();
    const pending = c.waitTaskEnd('lost').catch((e: Error) => e.message);
    const t0 = Date.now();
    server.last.ws.terminate();
    await once(c, 'registered'); // back at once, but the server never sends its task_end
    const msg = await pending;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    expect(msg).toMatch(
      /^No task_end for session lost within 300 ms \(resumeWaitMs\) of losing the connection \(code 1006\); .*GET \/sessions\/lost/,
    );
    // A waiter after the new registration has no such bound (the connection is up).
    const later = c.waitTaskEnd('later');
    await new Promise((r) => setTimeout(r, 400));
    server.last.send({ type: 'task_end', status: 'failed', session_id: 'later', error: 'x' });
    expect(await later).toMatchObject({ session_id: 'later', status: 'failed' });
  });

  it('resumeWaitMs 0 rejects task_end waiters at the drop, as before', async () => {
    server = await MockAipServer.start();
    const c = reconnectingDevice({ resumeWaitMs: 0 });
    await c.connect();
    const pending = c.waitTaskEnd('s1');
    const drop = once<DisconnectInfo>(c, 'disconnected');
    server.last.ws.terminate();
    expect((await drop).willReconnect).toBe(true);
    await expect(pending).rejects.toThrow(/Connection lost \(code 1006; reconnecting\)/);
    await expect(c.waitTaskEnd('s2')).rejects.toThrow(/Not connected/);
  });

  it('rejects kept waiters when it is closed or gives up while reconnecting', async () => {
    server = await MockAipServer.start();
    const closed = reconnectingDevice({ clientId: 'closed' });
    const givesUp = reconnectingDevice({
      clientId: 'gives-up',
      reconnect: { initialDelayMs: 50, maxDelayMs: 50, maxRetries: 2 },
    });
    await closed.connect();
    await givesUp.connect();
    const a = closed.waitTaskEnd('a').catch((e: Error) => e.message);
    const b = givesUp.waitTaskEnd('b').catch((e: Error) => e.message);
    const final = once<DisconnectInfo>(givesUp, 'disconnected', (i) => !i.willReconnect);
    await server.close();
    server = null;
    await closed.close();
    expect(await a).toBe('Client closed');
    expect((await final).reason).toMatch(/gave up after 2 attempts/);
    expect(await b).toBe('Connection lost (code 1006: gave up after 2 attempts; closed)');
  });

  it('gives up after maxRetries and reports a final disconnected', async () => {
    server = await MockAipServer.start();
    const c = track(
      new AipDeviceClient({
        url: server.url,
        token: 'secret',
        clientId: 'd1',
        reconnect: { initialDelayMs: 5, maxDelayMs: 10, maxRetries: 2 },
      }),
    );
    const attempts: number[] = [];
    c.on('reconnecting', (i) => attempts.push(i.attempt));
    await c.connect();
    const final = once<DisconnectInfo>(c, 'disconnected', (i) => !i.willReconnect);
    await server.close();
    server = null;
    expect((await final).reason).toMatch(/gave up after 2 attempts/);
    expect(attempts).toEqual([1, 2]);
    expect(c.connected).toBe(false);
  });

  it('close() stops reconnecting and rejects waiters', async () => {
    server = await MockAipServer.start();
    const c = track(
      new AipDeviceClient({
        url: server.url,
        token: 'secret',
        clientId: 'd1',
        reconnect: { initialDelayMs: 30 },
      }),
    );
    await c.connect();
    const pending = c.waitTaskEnd('s').catch((e: Error) => e.message);
    const gone = once<DisconnectInfo>(c, 'disconnected');
    await c.close();
    expect(await pending).toBe('Client closed');
    expect((await gone).willReconnect).toBe(false);
    await new Promise((r) => setTimeout(r, 80));
    expect(server.registrations).toHaveLength(1);
  });
});
