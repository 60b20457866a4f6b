/**
 * The AIP load-generation core shared by `aipd loadtest` and bench/: N simulated devices register, each
 * requests a long inline-plan task and answers every `command` at once with a success Result; when a task
 * ends the device requests another. Latency is client-side: from sending `command_results` to receiving
 * the next `command` (the server's send time is unknown to the client).
 *
 * Also drives idle devices (register, then heartbeat only) for memory tests.
 */
import { performance } from 'node:perf_hooks';
import { Packr, Unpackr } from 'msgpackr';
import { LatencyHistogram, type HistogramJson } from './loadtest-hist.js';
import { Pacer } from './loadtest-pacer.js';
import { RawWs } from './loadtest-ws.js';
import { SUBPROTOCOL_MSGPACK } from '../../protocol/index.js';

export type LoadCodec = 'json' | 'msgpack';

export interface AipLoadOptions {
  host: string;
  port: number;
  /** WebSocket path without query, e.g. `/ws`. */
  path: string;
  token: string;
  devices: number;
  /** Steps (one noop action each) per inline plan task. */
  steps: number;
  codec: LoadCodec;
  /** Unique per process: device ids are `<prefix><n>`. */
  idPrefix: string;
  /** Handshakes + registrations in flight at once (default 200). */
  connectConcurrency?: number;
  /**
   * Rate-limited mode: `command_results` go out at this many per second in total (FIFO over the devices ready to
   * answer) instead of at once. Latency is still measured from the actual send.
   */
  rate?: number;
}

export interface AipSnapshot {
  elapsed_s: number;
  round_trips: number;
  tasks_started: number;
  tasks_completed: number;
  tasks_failed: number;
  errors: number;
  first_error: string | null;
  heartbeats_answered: number;
  devices_connected: number;
  bytes_out: number;
  bytes_in: number;
  /** Wire bytes (header included) of the last request frame sent in the steady state (AIP: `command_results`). */
  frame_out_bytes?: number;
  /** Wire bytes of the last reply frame received in the steady state (AIP: `command`). */
  frame_in_bytes?: number;
  /** The same two messages as JSON text (wire bytes): what a binary codec's frames carry, for comparisons. */
  frame_out_json_bytes?: number;
  frame_in_json_bytes?: number;
  hist: HistogramJson;
}

export type ProgressFn = (done: number, total: number) => void;

type Counted = Omit<AipSnapshot, 'elapsed_s' | 'hist' | 'bytes_out' | 'bytes_in'>;

/** Wire bytes of a client→server frame (masked: 4-byte key) and of a server→client frame (unmasked). */
export function wireBytes(payload: number, masked: boolean): number {
  const head = payload < 126 ? 2 : payload < 65536 ? 4 : 10;
  return head + (masked ? 4 : 0) + payload;
}

/** A snapshot from counters (absent ones are 0), the socket byte counts and the latency histogram. */
export function makeSnapshot(
  since: number,
  hist: LatencyHistogram,
  sockets: Iterable<{ ws: { bytesOut: number; bytesIn: number } }>,
  counted: Partial<Counted> & Pick<Counted, 'round_trips' | 'errors' | 'first_error' | 'devices_connected'>,
): AipSnapshot {
  let out = 0;
  let inb = 0;
  for (const s of sockets) {
    out += s.ws.bytesOut;
    inb += s.ws.bytesIn;
  }
  return {
    elapsed_s: (performance.now() - since) / 1000,
    tasks_started: 0,
    tasks_completed: 0,
    tasks_failed: 0,
    heartbeats_answered: 0,
    ...counted,
    bytes_out: out,
    bytes_in: inb,
    hist: hist.toJSON(),
  };
}

type Msg = Record<string, unknown>;

interface Device {
  id: string;
  ws: RawWs;
  registered: boolean;
  /** performance.now() when the last command_results went out; 0 when not waiting for a command. */
  lastSent: number;
  /** performance.now() when the last heartbeat went out; 0 when none is outstanding. */
  hbSent: number;
}

/** The inline plan text: `{"task":"bench","steps":[{"actions":[noop]}, ...]}`. */
export function planRequest(steps: number): string {
  const step = (i: number): unknown => ({
    actions: [{ tool_name: 'noop', tool_type: 'action', parameters: { i } }],
  });
  return JSON.stringify({ task: 'bench', steps: Array.from({ length: steps }, (_, i) => step(i)) });
}

export class AipLoad {
  readonly hist = new LatencyHistogram();
  private readonly devices: Device[] = [];
  private readonly packr = new Packr({ useRecords: false });
  private readonly unpackr = new Unpackr({ useRecords: false });
  private readonly plan: string;
  private running = false;
  private stopping = false;
  private since = performance.now();
  private c = { rt: 0, started: 0, completed: 0, failed: 0, errors: 0, hb: 0 };
  private firstError: string | null = null;
  private waiters = new Map<Device, (err: string | null) => void>();
  private readonly pacer: Pacer<() => void> | null;
  private frameOut = 0;
  private frameIn = 0;
  /** JSON sizes of a `command_results` and a `command` (measured once, on the first command). */
  private jsonOut = 0;
  private jsonIn = 0;

  constructor(private readonly opts: AipLoadOptions) {
    this.plan = planRequest(opts.steps);
    this.pacer = opts.rate ? new Pacer<() => void>(opts.rate, (go) => go()) : null;
  }

  get connected(): number {
    return this.devices.filter((d) => d.registered && !d.ws.closed).length;
  }

  /** Connects and registers every device, `connectConcurrency` at a time. Failures count as errors. */
  async connectAll(onProgress?: ProgressFn): Promise<void> {
    const total = this.opts.devices;
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      while (next < total && !this.stopping) {
        const n = next++;
        try {
          await this.connectOne(`${this.opts.idPrefix}${n}`);
        } catch (err) {
          this.error(err instanceof Error ? err.message : String(err));
        }
        onProgress?.(++done, total);
      }
    };
    const k = Math.min(total, this.opts.connectConcurrency ?? 200);
    await Promise.all(Array.from({ length: k }, worker));
  }

  /** Every registered device requests a task; each requests the next one when its task ends. */
  startTasks(): void {
    this.running = true;
    this.pacer?.start();
    for (const d of this.devices) if (d.registered && !d.ws.closed) this.sendTask(d);
  }

  /**
   * Sends one heartbeat from every registered device. Replies are counted in `heartbeats_answered` and their
   * round-trip times go into the latency histogram (used by the idle scenario; tasks are not running then).
   */
  heartbeatAll(): void {
    for (const d of this.devices) {
      if (!d.registered || d.ws.closed) continue;
      d.hbSent = performance.now();
      this.send(d, {
        type: 'heartbeat',
        status: 'ok',
        client_type: 'device',
        client_id: d.id,
        timestamp: new Date().toISOString(),
      });
    }
  }

  resetStats(): void {
    this.c = { rt: 0, started: 0, completed: 0, failed: 0, errors: 0, hb: 0 };
    this.hist.reset();
    this.since = performance.now();
  }

  snapshot(): AipSnapshot {
    return makeSnapshot(this.since, this.hist, this.devices, {
      round_trips: this.c.rt,
      tasks_started: this.c.started,
      tasks_completed: this.c.completed,
      tasks_failed: this.c.failed,
      errors: this.c.errors,
      first_error: this.firstError,
      heartbeats_answered: this.c.hb,
      devices_connected: this.connected,
      frame_out_bytes: this.frameOut,
      frame_in_bytes: this.frameIn,
      frame_out_json_bytes: this.jsonOut,
      frame_in_json_bytes: this.jsonIn,
    });
  }

  /** Stops answering and closes every socket. */
  stop(): void {
    this.running = false;
    this.stopping = true;
    this.pacer?.stop();
    for (const d of this.devices) d.ws.close(1000);
  }

  private async connectOne(id: string): Promise<void> {
    const { host, port, path, token, codec } = this.opts;
    const ws = await RawWs.connect({
      host,
      port,
      path: `${path}?token=${encodeURIComponent(token)}`,
      ...(codec === 'msgpack' ? { protocol: SUBPROTOCOL_MSGPACK } : {}),
    });
    const d: Device = { id, ws, registered: false, lastSent: 0, hbSent: 0 };
    this.devices.push(d);
    ws.onMessage = (data, isBinary) => this.onMessage(d, data, isBinary);
    ws.onClose = (code) => {
      const w = this.waiters.get(d);
      if (w) w(`closed during registration (code ${code})`);
      else if (!this.stopping) this.error(`device ${d.id} closed unexpectedly (code ${code})`);
    };
    const err = await new Promise<string | null>((resolve) => {
      const timer = setTimeout(() => resolve('no registration reply within 10 s'), 10_000);
      this.waiters.set(d, (e) => {
        clearTimeout(timer);
        resolve(e);
      });
      this.send(d, {
        type: 'register',
        status: 'ok',
        client_type: 'device',
        client_id: id,
        metadata: { platform: 'linux' },
      });
    });
    this.waiters.delete(d);
    if (err !== null) {
      ws.destroy();
      throw new Error(`register ${id}: ${err}`);
    }
  }

  /** Sends a message; returns its payload bytes. */
  private send(d: Device, msg: Msg): number {
    if (this.opts.codec === 'msgpack') {
      const b = this.packr.pack(msg);
      d.ws.send(b, true);
      return b.length;
    }
    const text = JSON.stringify(msg);
    d.ws.send(text, false);
    return Buffer.byteLength(text);
  }

  private sendTask(d: Device): void {
    this.c.started++;
    d.lastSent = 0;
    this.send(d, {
      type: 'task',
      status: 'continue',
      client_id: d.id,
      request: this.plan,
      task_name: 'bench',
    });
  }

  private decode(data: string | Buffer, isBinary: boolean): Msg | null {
    try {
      const v: unknown = isBinary ? this.unpackr.unpack(data as Buffer) : JSON.parse(data as string);
      return v !== null && typeof v === 'object' ? (v as Msg) : null;
    } catch {
      return null;
    }
  }

  private onMessage(d: Device, data: string | Buffer, isBinary: boolean): void {
    const m = this.decode(data, isBinary);
    if (!m) return this.error('undecodable frame from server');
    switch (m.type) {
      case 'command':
        return this.onCommand(d, m, typeof data === 'string' ? Buffer.byteLength(data) : data.length);
      case 'heartbeat':
        if (!d.registered) {
          d.registered = true;
          this.waiters.get(d)?.(null);
        } else if (m.session_id == null) {
          this.c.hb++;
          if (d.hbSent > 0) this.hist.record((performance.now() - d.hbSent) * 1000);
          d.hbSent = 0;
        }
        return;
      case 'task_end':
        if (m.status === 'completed') this.c.completed++;
        else {
          this.c.failed++;
          this.error(
            `task_end ${String(m.status)}: ${typeof m.error === 'string' ? m.error : 'no error text'}`,
          );
        }
        d.lastSent = 0;
        if (this.running) this.sendTask(d);
        return;
      case 'error': {
        const text = typeof m.error === 'string' ? m.error : 'error frame';
        const w = this.waiters.get(d);
        if (w) return w(text);
        return this.error(text);
      }
      default:
        return;
    }
  }

  private onCommand(d: Device, m: Msg, bytes: number): void {
    const now = performance.now();
    if (d.lastSent > 0) this.hist.record((now - d.lastSent) * 1000);
    this.c.rt++;
    this.frameIn = wireBytes(bytes, false);
    if (!this.running) return;
    const actions = Array.isArray(m.actions) ? (m.actions as Msg[]) : [];
    const results = actions.map((a) => ({ status: 'success', result: 'ok', call_id: a?.call_id ?? null }));
    const msg = {
      type: 'command_results',
      status: 'continue',
      session_id: m.session_id,
      client_id: d.id,
      prev_response_id: m.response_id,
      action_results: results,
    };
    if (this.jsonIn === 0) {
      this.jsonIn = wireBytes(Buffer.byteLength(JSON.stringify(m)), false);
      this.jsonOut = wireBytes(Buffer.byteLength(JSON.stringify(msg)), true);
    }
    const reply = (): void => {
      if (!this.running || d.ws.closed) return;
      this.frameOut = wireBytes(this.send(d, msg), true);
      d.lastSent = performance.now();
    };
    d.lastSent = 0;
    if (this.pacer) this.pacer.push(reply);
    else reply();
  }

  private error(text: string): void {
    this.c.errors++;
    this.firstError ??= text;
  }
}
