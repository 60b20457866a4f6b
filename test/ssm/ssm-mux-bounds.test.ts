/**
 * The smux bridge's bounds and stream life (src/ssm/mux-bridge.ts, smux.ts): a device that goes offline before
 * the bridge starts, data for streams still opening, control replies while the plugin does not ack, the round
 * robin, and the plugin's FIN (a full close in smux v1). Unit tests drive MuxBridge through a fake host and fake
 * device channels; the offline device is also checked end to end against a real aipd and device.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { aipError, type AipError } from '../../protocol/index.js';
import { silentLogger } from '../../src/logger.js';
import type { BridgeHost } from '../../src/ssm/bridge.js';
import type { ClientMessage } from '../../src/ssm/codec.js';
import { MAX_MUX_STREAMS, MUX_FIN_DRAIN_MS, MuxBridge } from '../../src/ssm/mux-bridge.js';
import { SmuxDecoder, type SmuxFrame } from '../../src/ssm/smux.js';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { api, startDevice, until as untilAsync, type DeviceProc } from '../remote/helpers.js';
import { decodeFrame, encodeFrame, type Frame } from './ssm-test-client.js';

const smux = (cmd: number, id: number, data: Uint8Array = new Uint8Array(0)): Buffer => {
  const b = Buffer.alloc(8 + data.byteLength);
  b[0] = 1;
  b[1] = cmd;
  b.writeUInt16LE(data.byteLength, 2);
  b.writeUInt32LE(id, 4);
  b.set(data, 8);
  return b;
};
const SYN = 0;
const FIN = 1;
const PSH = 2;

const message = (payload: Uint8Array, payloadType = 1): ClientMessage => ({
  messageType: 'input_stream_data',
  schemaVersion: 1,
  createdDate: 1n,
  sequenceNumber: 0n,
  flags: 0n,
  messageId: '00000000-0000-0000-0000-000000000000',
  payloadType,
  payload,
});

/** Waits for pending promise continuations (the fakes settle at once). */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
};

/** A device channel: records what is written, hands out what the test pushes. */
class FakeEp {
  state: 'open' | 'closed' | 'reset' = 'open';
  readonly written: Buffer[] = [];
  ended = false;
  private readonly queue: (Uint8Array | null)[] = [];
  private readonly readable: (() => void)[] = [];
  private readonly changed: (() => void)[] = [];

  get finished(): boolean {
    return this.state !== 'open';
  }
  get queued(): number {
    return this.queue.length;
  }
  write(b: Uint8Array): Promise<void> {
    if (this.ended || this.state === 'reset') return Promise.reject(aipError('CHANNEL_CANCELLED'));
    this.written.push(Buffer.from(b));
    return Promise.resolve();
  }
  end(): Promise<void> {
    this.ended = true;
    return Promise.resolve();
  }
  reset(): void {
    if (this.state === 'reset') return;
    this.state = 'reset';
    for (const l of this.changed) l();
  }
  take(): Uint8Array | null | undefined {
    if (this.queue.length === 0 && this.state === 'reset') throw aipError('CHANNEL_CANCELLED');
    return this.queue.shift();
  }
  /** Device output; null is its FIN. */
  push(c: Uint8Array | null): void {
    this.queue.push(c);
    for (const l of this.readable) l();
  }
  onReadable(l: () => void): void {
    this.readable.push(l);
  }
  onStateChange(l: () => void): void {
    this.changed.push(l);
  }
}

interface Harness {
  bridge: MuxBridge;
  /** Output messages the bridge produced: smux frames (type 1) and flags (type 10). */
  out: { bytes: Uint8Array; payloadType: number }[];
  /** Output messages allowed in total (outputOpen is out.length < window). */
  window: { n: number };
  opens: { resolve: (ep: FakeEp) => void; reject: (e: AipError) => void }[];
  rooms: { n: number };
  failures: AipError[];
  frames(): SmuxFrame[];
}

function harness(o: { inputMaxBytes?: number; capabilities?: () => unknown } = {}): Harness {
  const out: Harness['out'] = [];
  const window = { n: Infinity };
  const rooms = { n: 0 };
  const opens: Harness['opens'] = [];
  const failures: AipError[] = [];
  const host = {
    live: {
      id: 'sess-1',
      agentId: 'dev',
      params: { portNumber: ['80'] },
      closers: new Set(),
      type: { name: 'Port', endsWithStream: false, stream: () => ({ kind: 'port', params: {} }) },
    },
    remote: {
      capabilities: o.capabilities ?? (() => ({ channels: ['port'] })),
      openChannel: () =>
        new Promise<FakeEp>((resolve, reject) => opens.push({ resolve, reject: (e) => reject(e) })),
      touch: () => undefined,
    },
    log: silentLogger(),
    inputMaxBytes: o.inputMaxBytes ?? 64 * 1024,
    outputOpen: () => out.length < window.n,
    output: (bytes: Uint8Array, payloadType = 1) => void out.push({ bytes, payloadType }),
    finish: () => undefined,
    fail: (e: AipError) => void failures.push(e),
    terminate: () => undefined,
    inputRoom: () => void rooms.n++,
  } as unknown as BridgeHost;
  const bridge = new MuxBridge(host, false);
  const frames = (): SmuxFrame[] => {
    const d = new SmuxDecoder();
    const r = d.push(Buffer.concat(out.filter((m) => m.payloadType === 1).map((m) => m.bytes)));
    if ('error' in r) throw new Error(r.error);
    return r;
  };
  return { bridge, out, window, opens, rooms, failures, frames };
}

describe('MuxBridge.start', () => {
  it('rejects, never throws, when the device is offline', async () => {
    const h = harness({
      capabilities: () => {
        throw aipError('REMOTE_DEVICE_OFFLINE', { id: 'gone-dev' });
      },
    });
    let started: Promise<void> | null = null;
    expect(() => (started = h.bridge.start())).not.toThrow();
    await expect(started).rejects.toThrow(/gone-dev/);
  });
});

describe('MuxBridge early data (before the device channel opens)', () => {
  it('is counted against the input budget: input stalls at it and flows on, intact, once the channel opens', async () => {
    const h = harness({ inputMaxBytes: 64 * 1024 });
    await h.bridge.start();
    h.bridge.take(message(smux(SYN, 3)));
    const chunks = Array.from({ length: 200 }, (_, i) => Buffer.alloc(16 * 1024, i));
    let taken = 0;
    while (taken < chunks.length && h.bridge.canTake(message(smux(PSH, 3, chunks[taken]))))
      h.bridge.take(message(smux(PSH, 3, chunks[taken++])));
    // Stalled at the budget (the last message may go over by its own size), all of it counted as pending input.
    expect(taken).toBe(4);
    expect(h.bridge.pendingInput).toBe(4 * 16 * 1024);
    const ep = new FakeEp();
    h.opens[0]!.resolve(ep);
    await settle();
    expect(h.rooms.n).toBeGreaterThan(0);
    for (let guard = 0; taken < chunks.length && guard < 10_000; guard++) {
      if (h.bridge.canTake(message(Buffer.alloc(0)))) h.bridge.take(message(smux(PSH, 3, chunks[taken++])));
      else await settle();
    }
    await settle();
    expect(Buffer.concat(ep.written).equals(Buffer.concat(chunks))).toBe(true);
    expect(h.bridge.pendingInput).toBe(0);
  });

  it('is released when the stream cannot connect', async () => {
    const h = harness({ inputMaxBytes: 32 * 1024 });
    await h.bridge.start();
    h.bridge.take(message(Buffer.concat([smux(SYN, 3), smux(PSH, 3, Buffer.alloc(40 * 1024))])));
    expect(h.bridge.canTake(message(Buffer.alloc(0)))).toBe(false);
    h.opens[0]!.reject(aipError('SSM_PORT_CONNECT_FAILED', { port: 80, reason: 'refused' }));
    await settle();
    expect(h.bridge.pendingInput).toBe(0);
    expect(h.bridge.canTake(message(Buffer.alloc(0)))).toBe(true);
    expect(h.rooms.n).toBeGreaterThan(0);
  });
});

describe('MuxBridge control replies', () => {
  it('wait for the outgoing window and stop input at the stream cap while the plugin does not ack', async () => {
    const h = harness();
    await h.bridge.start();
    h.window.n = 0; // the plugin stopped acking
    const syns = (from: number, n: number): Buffer =>
      Buffer.concat(Array.from({ length: n }, (_, i) => smux(SYN, from + 2 * i)));
    h.bridge.take(message(syns(3, MAX_MUX_STREAMS))); // a full stream table, every channel still opening
    let refused = 0;
    for (let m = 0; m < 40 && h.bridge.canTake(message(Buffer.alloc(0))); m++) {
      h.bridge.take(message(syns(10_001 + m * 2_000, 1_000)));
      refused += 1_000;
    }
    expect(h.out).toHaveLength(0); // nothing went past the closed window
    expect(refused).toBe(1_000); // input stopped once a stream cap of replies waited
    h.window.n = Infinity;
    h.bridge.pump();
    const fins = h.frames().filter((f) => f.cmd === FIN);
    expect(fins).toHaveLength(refused);
    expect(h.bridge.canTake(message(Buffer.alloc(0)))).toBe(true);
  });

  it('a failed connect: FIN and Flag ConnectToPortError (3) once the window has room', async () => {
    const h = harness();
    await h.bridge.start();
    h.window.n = 0;
    h.bridge.take(message(smux(SYN, 3)));
    h.opens[0]!.reject(aipError('SSM_PORT_CONNECT_FAILED', { port: 80, reason: 'refused' }));
    await settle();
    expect(h.out).toHaveLength(0);
    h.window.n = Infinity;
    h.bridge.pump();
    expect(h.frames().map((f) => [f.cmd, f.streamId, f.data.byteLength])).toEqual([[FIN, 3, 0]]);
    expect(
      h.out.filter((m) => m.payloadType === 10).map((m) => Buffer.from(m.bytes).readUInt32BE(0)),
    ).toEqual([3]);
  });
});

describe('MuxBridge output', () => {
  it('one pump visits every stream with data (round robin)', async () => {
    for (const n of [2, 3, 4, 5, 8]) {
      const h = harness();
      await h.bridge.start();
      h.window.n = 0;
      const ids = Array.from({ length: n }, (_, i) => 3 + 2 * i);
      h.bridge.take(message(Buffer.concat(ids.map((id) => smux(SYN, id)))));
      const eps = ids.map(() => new FakeEp());
      eps.forEach((ep, i) => h.opens[i]!.resolve(ep));
      await settle();
      for (const ep of eps) for (let k = 0; k < 10; k++) ep.push(Buffer.from('x'));
      h.window.n = n; // room for exactly one chunk per stream
      h.bridge.pump();
      expect(
        h
          .frames()
          .map((f) => f.streamId)
          .sort((a, b) => a - b),
      ).toEqual(ids);
    }
  });

  it("the plugin's FIN closes the stream: the connection ends, its output is dropped, the id is free", async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const h = harness();
      await h.bridge.start();
      h.bridge.take(message(smux(SYN, 3)));
      const ep = new FakeEp();
      h.opens[0]!.resolve(ep);
      await settle();
      h.bridge.take(
        message(Buffer.concat([smux(PSH, 3, Buffer.from('GET / HTTP/1.0\r\n\r\n')), smux(FIN, 3)])),
      );
      expect(Buffer.concat(ep.written).toString()).toBe('GET / HTTP/1.0\r\n\r\n');
      expect(ep.ended).toBe(true);
      ep.push(Buffer.from('late response'));
      expect(ep.queued).toBe(0); // read and dropped: the device's credit keeps flowing
      expect(h.frames()).toEqual([]); // not relayed to the plugin
      vi.advanceTimersByTime(MUX_FIN_DRAIN_MS);
      expect(ep.state).toBe('reset'); // it did not end in time
      h.bridge.take(message(smux(SYN, 3)));
      expect(h.opens).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a FIN before the channel opened: the early data is written, then the connection ends', async () => {
    const h = harness();
    await h.bridge.start();
    h.bridge.take(message(Buffer.concat([smux(SYN, 3), smux(PSH, 3, Buffer.from('hi')), smux(FIN, 3)])));
    const ep = new FakeEp();
    h.opens[0]!.resolve(ep);
    await settle();
    expect(Buffer.concat(ep.written).toString()).toBe('hi');
    expect(ep.ended).toBe(true);
    ep.push(Buffer.from('ignored'));
    ep.push(null);
    expect(h.frames()).toEqual([]);
    h.bridge.close(aipError('CHANNEL_CANCELLED'));
  });
});

describe('SmuxDecoder', () => {
  it('reassembles a largest frame fed a byte at a time, and one split anywhere', () => {
    const big = Buffer.alloc(0xffff, 7);
    const wire = Buffer.concat([smux(PSH, 5, big), smux(SYN, 7), smux(PSH, 7, Buffer.from('abc'))]);
    const d = new SmuxDecoder();
    const got: SmuxFrame[] = [];
    let most = 0;
    for (let i = 0; i < wire.length; i++) {
      const r = d.push(wire.subarray(i, i + 1));
      if ('error' in r) throw new Error(r.error);
      got.push(...r);
      most = Math.max(most, d.buffered);
    }
    expect(most).toBe(8 + 0xffff - 1);
    expect(got.map((f) => [f.cmd, f.streamId, f.data.byteLength])).toEqual([
      [PSH, 5, 0xffff],
      [SYN, 7, 0],
      [PSH, 7, 3],
    ]);
    expect(Buffer.from(got[0]!.data).equals(big)).toBe(true);
    expect(d.buffered).toBe(0);
    const e = new SmuxDecoder();
    expect(e.push(Buffer.from([1]))).toEqual([]);
    expect(e.push(Buffer.from([9, 0, 0, 0, 0, 0, 0]))).toEqual({ error: 'unknown smux command 9' });
  });
  it("keeps its own copy of an incomplete frame: the caller's buffer may be reused", () => {
    const d = new SmuxDecoder();
    const wire = smux(PSH, 5, Buffer.from('hello world'));
    const reused = Buffer.alloc(wire.length);
    wire.copy(reused, 0, 0, 12);
    expect(d.push(reused.subarray(0, 12))).toEqual([]);
    reused.fill(0); // as uWS does with a message's buffer after the handler returns
    wire.copy(reused, 0, 12);
    const r = d.push(reused.subarray(0, wire.length - 12));
    if ('error' in r) throw new Error(r.error);
    expect(r.map((f) => [f.cmd, f.streamId, Buffer.from(f.data).toString()])).toEqual([
      [PSH, 5, 'hello world'],
    ]);
  });
});

describe('a Port (smux) session whose device goes offline before the HandshakeResponse', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let device: DeviceProc;
  const DEV = 'ssm-mux-offline-dev';

  beforeAll(async () => {
    server = await startTestServer();
    device = await startDevice(`http://127.0.0.1:${server.port}`, TEST_KEY, DEV, ['--allow-port', '9']);
  }, 60_000);

  afterAll(async () => {
    await device?.stop();
    await server?.close();
  });

  it('ends with channel_closed naming the device; the server stays up', async () => {
    const base = `http://127.0.0.1:${server.port}`;
    const a = api(base, TEST_KEY);
    const r = await a.call('POST', '/sessions', {
      agent_id: DEV,
      session_type: 'Port',
      parameters: { portNumber: ['9'] },
    });
    expect(r.status, r.text).toBe(201);
    const ws = new WebSocket(r.json.ssm_stream_url as string);
    const frames: Frame[] = [];
    ws.on('message', (d: Buffer) => frames.push(decodeFrame(d)));
    const closed = new Promise<void>((res) => ws.once('close', () => res()));
    try {
      await new Promise<void>((res, rej) => {
        ws.once('open', () => res());
        ws.once('error', rej);
      });
      ws.send(
        JSON.stringify({
          MessageSchemaVersion: '1.0',
          RequestId: 'r-1',
          TokenValue: r.json.token_value,
          ClientId: 'cid-offline',
          ClientVersion: '1.2.0.0',
        }),
      );
      await untilAsync(async () => frames.some((f) => f.payloadType === 5), 'the HandshakeRequest');
      const hs = frames.find((f) => f.payloadType === 5)!;
      const ack = {
        AcknowledgedMessageType: hs.type,
        AcknowledgedMessageId: hs.id,
        AcknowledgedMessageSequenceNumber: hs.seq,
        IsSequentialMessage: true,
      };
      ws.send(encodeFrame({ type: 'acknowledge', flags: 3, payload: Buffer.from(JSON.stringify(ack)) }));
      await device.stop();
      await untilAsync(async () => {
        const c = (await (
          await fetch(`${base}/api/clients`, { headers: { 'x-api-key': TEST_KEY } })
        ).json()) as {
          online_clients?: string[];
        };
        return !c.online_clients?.includes(DEV);
      }, 'the device to go offline');
      const response = {
        ClientVersion: '1.2.0.0',
        ProcessedClientActions: [
          { ActionType: 'SessionType', ActionStatus: 1, ActionResult: null, Error: '' },
        ],
        Errors: null,
      };
      ws.send(
        encodeFrame({
          type: 'input_stream_data',
          seq: 0,
          payloadType: 6,
          payload: Buffer.from(JSON.stringify(response)),
        }),
      );
      await untilAsync(async () => frames.some((f) => f.type === 'channel_closed'), 'channel_closed');
      const cc = frames.find((f) => f.type === 'channel_closed')!;
      expect(String((JSON.parse(cc.payload.toString()) as { Output: string }).Output)).toMatch(DEV);
      await closed;
      expect((await a.call('GET', `/sessions/${r.json.id as string}`)).status).toBe(200);
    } finally {
      ws.close();
    }
  }, 60_000);
});
