/**
 * Load-generator side of the `channel` scenario (runs in the bench/loadgen.ts child):
 *
 * - ChannelLoad: one device and one controller on lean sockets (RawWs), a live constellation task whose only
 *   command the device holds, and `streams` data channels controller → device through aipd. Each writer sends
 *   64 KiB chunks as fast as credit allows (window = the device's 1 MiB receive window); the device drains at once.
 *   One unit = one 64 KiB chunk delivered; latency = write call → chunk taken by the reader (same process clock).
 * - BinaryEchoLoad: the reference on the bare uWS echo server with binary 64 KiB messages, `streams` connections
 *   each keeping the same bytes in flight (16 chunks = 1 MiB). One unit = one 64 KiB echo.
 */
import { performance } from 'node:perf_hooks';
import { isChannelFrame } from '../../protocol/channel.js';
import { LatencyHistogram } from '../../src/cli/loadtest-hist.js';
import type { AipSnapshot, ProgressFn } from '../../src/cli/loadtest-core.js';
import { buildFrame, RawWs } from '../../src/cli/loadtest-ws.js';
import type { ChannelEndpoint } from '../../src/channel/endpoint.js';
import { ChannelMux } from '../../src/channel/mux.js';
import { deviceRegister } from './register.js';

export const CHANNEL_CHUNK = 64 * 1024;
export const CHANNEL_WINDOW = 1024 * 1024;
export const ECHO_WINDOW = CHANNEL_WINDOW / CHANNEL_CHUNK;

export interface ChannelLoadOptions {
  host: string;
  port: number;
  token: string;
  streams: number;
  idPrefix: string;
}

type Msg = Record<string, unknown>;

/** Counters shared by both loads. */
abstract class Counted {
  readonly hist = new LatencyHistogram();
  protected units = 0;
  protected bytes = 0;
  protected errors = 0;
  protected firstError: string | null = null;
  protected since = performance.now();
  protected running = false;
  protected stopping = false;

  resetStats(): void {
    this.units = 0;
    this.bytes = 0;
    this.errors = 0;
    this.hist.reset();
    this.since = performance.now();
  }

  protected base(connected: number, out: number): AipSnapshot {
    return {
      elapsed_s: (performance.now() - this.since) / 1000,
      round_trips: this.units,
      tasks_started: 0,
      tasks_completed: 0,
      tasks_failed: 0,
      errors: this.errors,
      first_error: this.firstError,
      heartbeats_answered: 0,
      devices_connected: connected,
      bytes_out: out,
      bytes_in: this.bytes,
      hist: this.hist.toJSON(),
    };
  }

  protected error(text: string): void {
    this.errors++;
    this.firstError ??= text;
  }
}

/** A RawWs with a ChannelMux and a queue of JSON text frames. */
class Peer {
  readonly mux: ChannelMux;
  private readonly texts: Msg[] = [];
  private waiter: (() => void) | null = null;

  constructor(
    readonly ws: RawWs,
    onOpen?: ConstructorParameters<typeof ChannelMux>[0]['onOpen'],
  ) {
    this.mux = new ChannelMux({
      side: 'client',
      receiveWindow: CHANNEL_WINDOW,
      send: (f) => {
        if (ws.closed) return false;
        ws.send(f, true);
        return true;
      },
      onOpen,
    });
    ws.onMessage = (data, isBinary) => {
      if (isBinary && typeof data !== 'string' && isChannelFrame(data)) return this.mux.handleFrame(data);
      if (typeof data === 'string') this.texts.push(JSON.parse(data) as Msg);
      this.waiter?.();
    };
  }

  send(obj: Msg): void {
    this.ws.send(JSON.stringify(obj), false);
  }

  /** The next text frame matching `pred` (earlier non-matching frames are dropped). */
  async next(pred: (m: Msg) => boolean, timeoutMs = 10_000): Promise<Msg> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.texts.findIndex(pred);
      if (i >= 0) return this.texts.splice(0, i + 1)[i]!;
      this.texts.length = 0;
      if (Date.now() > end) throw new Error('no expected frame from aipd');
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.waiter = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }
}

export class ChannelLoad extends Counted {
  private device: Peer | null = null;
  private controller: Peer | null = null;
  private writers: ChannelEndpoint[] = [];

  constructor(private readonly opts: ChannelLoadOptions) {
    super();
  }

  async connectAll(onProgress?: ProgressFn): Promise<void> {
    const { host, port, token, idPrefix } = this.opts;
    const path = `/ws?token=${encodeURIComponent(token)}`;
    const deviceId = `${idPrefix}dev`;
    const device = (this.device = new Peer(await RawWs.connect({ host, port, path }), (inc) =>
      this.drain(inc.accept()),
    ));
    device.send(deviceRegister(deviceId));
    await device.next((m) => m.type === 'heartbeat');
    const controller = (this.controller = new Peer(await RawWs.connect({ host, port, path })));
    controller.send({
      type: 'register',
      status: 'ok',
      client_type: 'constellation',
      client_id: `k@${deviceId}`,
      target_id: deviceId,
    });
    await controller.next((m) => m.type === 'heartbeat');
    const request = JSON.stringify({
      task: 'bench channel',
      steps: [{ actions: [{ tool_name: 'hold', tool_type: 'action', parameters: {} }] }],
    });
    const sessionId = `${idPrefix}session`;
    controller.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      client_id: `k@${deviceId}`,
      target_id: deviceId,
      request,
      session_id: sessionId,
    });
    await controller.next((m) => m.type === 'heartbeat' && m.session_id === sessionId);
    await device.next((m) => m.type === 'command'); // held: the session stays live
    for (let i = 0; i < this.opts.streams; i++) {
      this.writers.push(
        await controller.mux.open({ session_id: sessionId, kind: 'stream', params: { bench: i } }),
      );
      onProgress?.(i + 1, this.opts.streams);
    }
    for (const p of [device, controller])
      p.ws.onClose = (code) => {
        if (!this.stopping) this.error(`connection closed unexpectedly (code ${code})`);
      };
  }

  start(): void {
    this.running = true;
    for (const ep of this.writers) void this.pump(ep);
  }

  snapshot(): AipSnapshot {
    const socks = [this.device, this.controller].filter((p): p is Peer => p !== null);
    return this.base(socks.filter((p) => !p.ws.closed).length, this.controller?.ws.bytesOut ?? 0);
  }

  stop(): void {
    this.running = false;
    this.stopping = true;
    for (const p of [this.device, this.controller]) p?.ws.close(1000);
  }

  private async pump(ep: ChannelEndpoint): Promise<void> {
    const chunk = new Uint8Array(CHANNEL_CHUNK).fill(0x5a);
    const view = new DataView(chunk.buffer);
    try {
      while (this.running) {
        view.setFloat64(0, performance.now());
        await ep.write(chunk);
      }
    } catch (err) {
      if (!this.stopping) this.error(err instanceof Error ? err.message : String(err));
    }
  }

  private drain(ep: ChannelEndpoint): void {
    ep.onReadable(() => {
      for (;;) {
        let c: Uint8Array | null | undefined;
        try {
          c = ep.take();
        } catch {
          return;
        }
        if (!c) return;
        this.units++;
        this.bytes += c.byteLength;
        const t = new DataView(c.buffer, c.byteOffset, c.byteLength).getFloat64(0);
        this.hist.record((performance.now() - t) * 1000);
      }
    });
  }
}

export interface BinaryEchoOptions {
  host: string;
  port: number;
  conns: number;
}

export class BinaryEchoLoad extends Counted {
  private readonly conns: { ws: RawWs; sent: number[] }[] = [];
  private readonly frame = buildFrame(new Uint8Array(CHANNEL_CHUNK).fill(0x5a), true);

  constructor(private readonly opts: BinaryEchoOptions) {
    super();
  }

  async connectAll(onProgress?: ProgressFn): Promise<void> {
    for (let i = 0; i < this.opts.conns; i++) {
      const ws = await RawWs.connect({ host: this.opts.host, port: this.opts.port, path: '/' });
      const c = { ws, sent: [] as number[] };
      ws.onMessage = (data) => this.onEcho(c, data.length);
      ws.onClose = (code) => {
        if (!this.stopping) this.error(`connection closed unexpectedly (code ${code})`);
      };
      this.conns.push(c);
      onProgress?.(i + 1, this.opts.conns);
    }
  }

  start(): void {
    this.running = true;
    for (const c of this.conns) {
      const now = performance.now();
      for (let i = 0; i < ECHO_WINDOW; i++) c.sent.push(now);
      c.ws.sendFrames(Array.from({ length: ECHO_WINDOW }, () => this.frame));
    }
  }

  snapshot(): AipSnapshot {
    return this.base(
      this.conns.filter((c) => !c.ws.closed).length,
      this.conns.reduce((a, c) => a + c.ws.bytesOut, 0),
    );
  }

  stop(): void {
    this.running = false;
    this.stopping = true;
    for (const c of this.conns) c.ws.close(1000);
  }

  private onEcho(c: { ws: RawWs; sent: number[] }, bytes: number): void {
    const t0 = c.sent.shift();
    const now = performance.now();
    if (t0 !== undefined) this.hist.record((now - t0) * 1000);
    this.units++;
    this.bytes += bytes;
    if (!this.running) return;
    c.sent.push(now);
    c.ws.sendFrames([this.frame]);
  }
}
