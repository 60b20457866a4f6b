/**
 * The mixed load of `npm run soak` (runs in the soak process; aipd runs in its own process):
 *
 * - TaskLoad: devices and controllers from src/client; every controller keeps `loops` plan tasks running
 *   (controller `requestTask` with an inline plan of 3–8 noop steps, then its `task_end`), the devices answer
 *   every command through a shared token-bucket Pacer (the soak's steps-per-second target).
 * - ChannelLoad: device/controller pairs with attachChannelMux; each pair holds a one-step `hold` task (the
 *   device keeps its command) for `holdS` seconds, and during it opens `stream` channels one after another:
 *   the controller writes `channelBytes` in 16 KiB chunks at `channelRate` B/s, the device echoes every chunk
 *   and ends with a trailer {bytes, sum}; the controller checks the echo and the trailer. Then the command is
 *   released (task completes) and the next hold task starts.
 * - Heartbeats: every persistent client sends `heartbeat` every `heartbeatMs`; replies are counted.
 * - ChurnLoad: every 1/churnPerS s a short-lived device (lean RawWs, or an AipDeviceClient) connects and goes away:
 *   dropped right after registering, killed (no close handshake) in the middle of a task a churn controller
 *   started on it, closed gracefully after a task, dropped while its `register` is in flight, or right after
 *   the WebSocket handshake.
 * - BadFrameLoad: a registered raw `ws` client sends malformed JSON, wrong types, oversized ids, invalid UTF-8 in
 *   binary frames, deep nesting, non-objects, unknown types and `__proto__` keys, each of which must be answered
 *   by one `error` frame; every 10th tick a one-shot connection sends a bad first frame (expect close 4000) or an
 *   invalid-UTF-8 text frame after registering (expect close 1007).
 *
 * Every task is tracked by session id (TaskTracker) from its request to its `task_end`.
 */
import { performance } from 'node:perf_hooks';
import { WebSocket, type RawData } from 'ws';
import { Errors, type ResultInput, type ServerMessage } from '../../protocol/index.js';
import type { ChannelEndpoint } from '../../src/channel/endpoint.js';
import type { ChannelMux, IncomingChannel } from '../../src/channel/mux.js';
import { attachChannelMux } from '../../src/client/channels/attach.js';
import { AipControllerClient, AipDeviceClient, type AipClientBase } from '../../src/client/index.js';
import { planRequest } from '../../src/cli/loadtest-core.js';
import { RawWs } from '../../src/cli/loadtest-ws.js';
import { deviceRegister } from './register.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Counts by key. */
export class Counter {
  private readonly m = new Map<string, number>();
  add(key: string, n = 1): void {
    this.m.set(key, (this.m.get(key) ?? 0) + n);
  }
  get(key: string): number {
    return this.m.get(key) ?? 0;
  }
  total(): number {
    let t = 0;
    for (const v of this.m.values()) t += v;
    return t;
  }
  /** Largest first. */
  entries(): [string, number][] {
    return [...this.m.entries()].sort((a, b) => b[1] - a[1]);
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.entries());
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Error texts → catalogue names

const HOLE = '\u0000';
const holes = new Proxy({}, { get: () => HOLE });
/** One matcher per catalogue entry whose text has literal parts, the most specific (longest literal) first. */
const MATCHERS: [RegExp, string][] = Object.entries(
  Errors as Record<string, { text: (p: unknown) => string }>,
)
  .flatMap(([name, spec]): [RegExp, string, number][] => {
    let t: string;
    try {
      t = spec.text(holes);
    } catch {
      return [];
    }
    const parts = t.split(HOLE);
    const literal = parts.join('').length;
    if (literal === 0) return [];
    const re = new RegExp(
      `^${parts.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[\\s\\S]*?')}$`,
    );
    return [[re, name, literal]];
  })
  .sort((a, b) => b[2] - a[2])
  .map(([re, name]) => [re, name]);

/** The catalogue name of an error text (`VALIDATION` when only the free-text VALIDATION entry fits). */
export function errorName(text: string): string {
  for (const [re, name] of MATCHERS) if (re.test(text)) return name;
  return 'VALIDATION';
}

/** An error text with ids and numbers blanked, for bucketing. */
export function bucket(text: string): string {
  return text
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '<uuid>')
    .replace(/soak-[\w@.-]+/g, '<id>')
    .replace(/\d+/g, 'N')
    .slice(0, 120);
}

// ---------------------------------------------------------------------------------------------------------------
// Pacing

/** A token bucket for command answers: `take()` resolves when a token is free. Rate Infinity = unpaced. */
export class Pacer {
  private tokens = 0;
  private readonly queue: (() => void)[] = [];
  private last = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(private rate = Number.POSITIVE_INFINITY) {
    this.timer = setInterval(() => this.tick(), 5);
  }

  setRate(rate: number): void {
    this.tick();
    this.rate = rate;
    this.tokens = 0;
    this.last = performance.now();
    this.tick();
  }

  take(): Promise<void> | undefined {
    if (this.rate === Number.POSITIVE_INFINITY) return undefined;
    if (this.queue.length === 0 && this.tokens >= 1) {
      this.tokens--;
      return undefined;
    }
    return new Promise((r) => this.queue.push(r));
  }

  /** Unpaced from now on; everything waiting goes at once. */
  releaseAll(): void {
    this.rate = Number.POSITIVE_INFINITY;
    for (const r of this.queue.splice(0)) r();
  }

  stop(): void {
    this.releaseAll();
    clearInterval(this.timer);
  }

  private tick(): void {
    const now = performance.now();
    if (this.rate === Number.POSITIVE_INFINITY) {
      for (const r of this.queue.splice(0)) r();
    } else {
      const burst = Math.max(1, this.rate * 0.02);
      this.tokens = Math.min(burst, this.tokens + ((now - this.last) / 1000) * this.rate);
      while (this.tokens >= 1 && this.queue.length > 0) {
        this.tokens--;
        this.queue.shift()!();
      }
    }
    this.last = now;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Task tracking

export type TaskKind = 'plan' | 'hold' | 'churn';

interface Track {
  readonly sid: string;
  readonly kind: TaskKind;
  readonly requestedAt: number;
  acked: boolean;
  /** When the soak deliberately killed the task's device (a failure after it is expected). */
  killedAt: number | null;
  readonly done: (end: ServerMessage | null) => void;
}

export interface LostTask {
  sid: string;
  kind: TaskKind;
  acked: boolean;
  age_s: number;
}

export class TaskTracker {
  /** Tasks the server acknowledged, by kind. */
  readonly started = new Counter();
  readonly completed = new Counter();
  /** Failed after the soak killed the task's device on purpose (churn), by `kind: reason`. */
  readonly failedExpected = new Counter();
  /** Any other failure, by `kind: reason`. */
  readonly failedUnexpected = new Counter();
  /** Task requests answered with an error instead of an ACK, by `kind: reason`. */
  readonly refused = new Counter();
  /** task_end frames for sessions the tracker does not know (or already ended). */
  readonly strayEnds = new Counter();
  private readonly open = new Map<string, Track>();
  private lastEndAt = 0;

  /** Registers a task before its request is sent; resolves with its task_end (null when abandoned or refused). */
  request(sid: string, kind: TaskKind): Promise<ServerMessage | null> {
    return new Promise((done) =>
      this.open.set(sid, { sid, kind, requestedAt: Date.now(), acked: false, killedAt: null, done }),
    );
  }

  /** The request was answered with an error (no task started). */
  refusedWith(sid: string, reason: string): void {
    const t = this.open.get(sid);
    if (!t) return;
    this.open.delete(sid);
    this.refused.add(`${t.kind}: ${bucket(reason)}`);
    t.done(null);
  }

  killed(sid: string): void {
    const t = this.open.get(sid);
    if (t) t.killedAt = Date.now();
  }

  /** Every frame a controller receives goes through here (ACKs and task_end). */
  onFrame(msg: ServerMessage): void {
    const sid = msg.session_id;
    if (!sid) return;
    if (msg.type === 'heartbeat' && msg.status === 'ok') {
      const t = this.open.get(sid);
      if (t && !t.acked) {
        t.acked = true;
        this.started.add(t.kind);
      }
      return;
    }
    if (msg.type !== 'task_end') return;
    const t = this.open.get(sid);
    if (!t) {
      this.strayEnds.add(`task_end ${msg.status} for an unknown session`);
      return;
    }
    this.open.delete(sid);
    this.lastEndAt = Date.now();
    if (!t.acked) {
      // the ACK always precedes task_end on the wire; count it as started all the same
      t.acked = true;
      this.started.add(t.kind);
    }
    if (msg.status === 'completed') this.completed.add(t.kind);
    else {
      const reason = `${t.kind}: ${bucket(msg.error ?? `status ${msg.status}`)}`;
      if (t.killedAt !== null) this.failedExpected.add(reason);
      else this.failedUnexpected.add(reason);
    }
    t.done(msg);
  }

  /** Tasks still waiting for a task_end (acked) or for an ACK. */
  get pending(): number {
    return this.open.size;
  }

  get msSinceLastEnd(): number {
    return this.lastEndAt === 0 ? Number.POSITIVE_INFINITY : Date.now() - this.lastEndAt;
  }

  /** Gives up on every open task (their waiters resolve with null) and returns them. */
  abandon(): LostTask[] {
    const now = Date.now();
    const lost = [...this.open.values()].map((t) => ({
      sid: t.sid,
      kind: t.kind,
      acked: t.acked,
      age_s: Math.round((now - t.requestedAt) / 100) / 10,
    }));
    for (const t of this.open.values()) t.done(null);
    this.open.clear();
    return lost;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Shared plumbing for persistent clients

export interface Endpoint {
  host: string;
  port: number;
  token: string;
  /** ws://host:port/ws */
  url: string;
}

export interface SoakCounters {
  /** Unexpected problems, by kind (any entry here is worth a look). */
  errors: Counter;
  /** Heartbeat replies received by persistent clients. */
  heartbeats: { answered: number; clients: number };
  stopping: boolean;
}

/** Hooks a persistent client's events into the counters (and, for controllers, the tracker). */
function watch(c: AipClientBase, role: string, k: SoakCounters, tracker?: TaskTracker): void {
  k.heartbeats.clients++;
  c.on('frame', (m) => {
    if (m.type === 'heartbeat' && m.session_id === null) k.heartbeats.answered++;
    else if (m.type === 'error') k.errors.add(`error frame to a ${role}: ${bucket(m.error ?? '')}`);
    if (tracker) tracker.onFrame(m);
  });
  c.on('disconnected', (info) => {
    if (!k.stopping) k.errors.add(`${role} disconnected (code ${info.code})`);
  });
  c.on('error', (err) => {
    if (!k.stopping) k.errors.add(`${role} client error: ${bucket(err.message)}`);
  });
}

const okResults = (cmd: ServerMessage): ResultInput[] =>
  (cmd.actions ?? []).map(() => ({ status: 'success', result: 'ok' }));

const PLANS = new Map<number, string>();
export const plan = (steps: number): string => {
  let p = PLANS.get(steps);
  if (!p) PLANS.set(steps, (p = planRequest(steps)));
  return p;
};
const HOLD_PLAN = JSON.stringify({
  task: 'soak hold',
  steps: [{ actions: [{ tool_name: 'hold', tool_type: 'action', parameters: {} }] }],
});

// ---------------------------------------------------------------------------------------------------------------
// (a) plan tasks

export interface TaskLoadOptions {
  devices: number;
  loopsPerController: number;
  heartbeatMs: number;
}

export class TaskLoad {
  /** Commands answered (one per plan step). */
  steps = 0;
  private readonly devices: AipDeviceClient[] = [];
  private readonly controllers: AipControllerClient[] = [];
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly ep: Endpoint,
    private readonly o: TaskLoadOptions,
    private readonly tracker: TaskTracker,
    private readonly pacer: Pacer,
    private readonly k: SoakCounters,
  ) {}

  async connect(): Promise<void> {
    for (let i = 0; i < this.o.devices; i++) {
      const id = `soak-dev-${i}`;
      const device = new AipDeviceClient({
        url: this.ep.url,
        token: this.ep.token,
        clientId: id,
        reconnect: false,
        heartbeatIntervalMs: this.o.heartbeatMs,
        onCommand: async (cmd) => {
          await this.pacer.take();
          this.steps++;
          return okResults(cmd);
        },
      });
      watch(device, 'task device', this.k);
      await device.connect();
      const controller = new AipControllerClient({
        url: this.ep.url,
        token: this.ep.token,
        clientId: `soak-ctl@${id}`,
        targetId: id,
        reconnect: false,
        heartbeatIntervalMs: this.o.heartbeatMs,
      });
      watch(controller, 'task controller', this.k, this.tracker);
      await controller.connect();
      this.devices.push(device);
      this.controllers.push(controller);
    }
  }

  start(): void {
    this.running = true;
    this.controllers.forEach((c, i) => {
      for (let l = 0; l < this.o.loopsPerController; l++) this.loops.push(this.loop(c, i, l));
    });
  }

  /** Stops requesting tasks; each loop ends after its current task. */
  stop(): Promise<void> {
    this.running = false;
    const all = Promise.all(this.loops).then(() => undefined);
    this.loops = [];
    return all;
  }

  async close(): Promise<void> {
    await Promise.all([...this.controllers, ...this.devices].map((c) => c.close()));
  }

  private async loop(c: AipControllerClient, i: number, l: number): Promise<void> {
    for (let n = 0; this.running && c.connected; n++) {
      const sid = `soak-plan-${i}-${l}-${n}`;
      const ended = this.tracker.request(sid, 'plan');
      try {
        await c.requestTask({ request: plan(3 + ((i * 7 + l * 3 + n) % 6)), sessionId: sid });
      } catch (err) {
        this.tracker.refusedWith(sid, errText(err));
        await sleep(500);
        continue;
      }
      await ended;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// (c) data channels

export interface ChannelLoadOptions {
  pairs: number;
  /** Bytes per channel (each way). */
  channelBytes: number;
  /** Bytes per second each pair writes. */
  rate: number;
  /** Seconds a hold task (and its channels) lives before it is released. */
  holdS: number;
  heartbeatMs: number;
}

const CHUNK = 16 * 1024;
const CHUNKS: { data: Uint8Array; sum: number }[] = Array.from({ length: 16 }, (_, k) => {
  const data = new Uint8Array(CHUNK);
  let sum = 0;
  for (let j = 0; j < CHUNK; j++) sum += data[j] = (k * 31 + j) & 0xff;
  return { data, sum };
});
const sumOf = (c: Uint8Array): number => {
  let s = 0;
  for (let j = 0; j < c.byteLength; j++) s += c[j]!;
  return s;
};

class ChannelPair {
  readonly device: AipDeviceClient;
  readonly controller: AipControllerClient;
  readonly controllerMux: ChannelMux;
  private readonly holds = new Map<string, () => void>();

  constructor(
    ep: Endpoint,
    readonly i: number,
    private readonly load: ChannelLoad,
    heartbeatMs: number,
  ) {
    const id = `soak-chdev-${i}`;
    this.device = new AipDeviceClient({
      url: ep.url,
      token: ep.token,
      clientId: id,
      reconnect: false,
      heartbeatIntervalMs: heartbeatMs,
      onCommand: (cmd) =>
        new Promise<ResultInput[]>((resolve) =>
          this.holds.set(cmd.session_id ?? '', () => resolve([{ status: 'success', result: 'released' }])),
        ),
    });
    this.controller = new AipControllerClient({
      url: ep.url,
      token: ep.token,
      clientId: `soak-chctl@${id}`,
      targetId: id,
      reconnect: false,
      heartbeatIntervalMs: heartbeatMs,
    });
    attachChannelMux(this.device, { onOpen: (inc) => this.serve(inc) });
    this.controllerMux = attachChannelMux(this.controller);
  }

  /** Lets the held command of `sid` finish. */
  release(sid: string): boolean {
    const r = this.holds.get(sid);
    if (!r) return false;
    this.holds.delete(sid);
    r();
    return true;
  }

  releaseAll(): void {
    for (const sid of [...this.holds.keys()]) this.release(sid);
  }

  async waitHeld(sid: string, timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!this.holds.has(sid)) {
      if (Date.now() > end) return false;
      await sleep(10);
    }
    return true;
  }

  /** Device side: echo every chunk, then FIN with {bytes, sum}. */
  private serve(inc: IncomingChannel): void {
    const ep = inc.accept();
    void (async () => {
      let bytes = 0;
      let sum = 0;
      try {
        for (;;) {
          const c = await ep.read();
          if (c === null) break;
          bytes += c.byteLength;
          sum += sumOf(c);
          await ep.write(c);
        }
        await ep.end({ bytes, sum });
      } catch (err) {
        if (!this.load.k.stopping) this.load.failed.add(`device side: ${bucket(errText(err))}`);
      }
    })();
  }
}

export class ChannelLoad {
  opened = 0;
  ok = 0;
  readonly failed = new Counter();
  bytesOut = 0;
  bytesEchoed = 0;
  private readonly pairs: ChannelPair[] = [];
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly ep: Endpoint,
    private readonly o: ChannelLoadOptions,
    private readonly tracker: TaskTracker,
    readonly k: SoakCounters,
  ) {}

  async connect(): Promise<void> {
    for (let i = 0; i < this.o.pairs; i++) {
      const p = new ChannelPair(this.ep, i, this, this.o.heartbeatMs);
      watch(p.device, 'channel device', this.k);
      watch(p.controller, 'channel controller', this.k, this.tracker);
      await p.device.connect();
      await p.controller.connect();
      this.pairs.push(p);
    }
  }

  start(): void {
    this.running = true;
    this.loops = this.pairs.map((p) => this.loop(p));
  }

  /** Stops after the current channel; releases the held commands so the hold tasks complete. */
  stop(): Promise<void> {
    this.running = false;
    const all = Promise.all(this.loops).then(() => undefined);
    this.loops = [];
    return all;
  }

  releaseAll(): void {
    for (const p of this.pairs) p.releaseAll();
  }

  async close(): Promise<void> {
    await Promise.all(this.pairs.flatMap((p) => [p.controller.close(), p.device.close()]));
  }

  private async loop(p: ChannelPair): Promise<void> {
    for (let n = 0; this.running && p.controller.connected; n++) {
      const sid = `soak-hold-${p.i}-${n}`;
      const ended = this.tracker.request(sid, 'hold');
      try {
        await p.controller.requestTask({ request: HOLD_PLAN, sessionId: sid });
      } catch (err) {
        this.tracker.refusedWith(sid, errText(err));
        await sleep(500);
        continue;
      }
      if (!(await p.waitHeld(sid, 10_000)))
        this.k.errors.add('hold task: the device got no command within 10 s');
      const until = Date.now() + this.o.holdS * 1000;
      while (this.running && Date.now() < until && p.controller.connected) await this.oneChannel(p, sid);
      p.release(sid);
      await ended;
    }
  }

  private async oneChannel(p: ChannelPair, sid: string): Promise<void> {
    this.opened++;
    let ep: ChannelEndpoint | null = null;
    try {
      ep = await p.controllerMux.open({ session_id: sid, kind: 'stream', params: { soak: true } });
      const reader = this.readAll(ep);
      reader.catch(() => undefined); // awaited below; a reset rejects both sides
      const chunks = Math.max(1, Math.ceil(this.o.channelBytes / CHUNK));
      const t0 = performance.now();
      let sum = 0;
      for (let k = 0; k < chunks; k++) {
        const c = CHUNKS[k % CHUNKS.length]!;
        await ep.write(c.data);
        sum += c.sum;
        this.bytesOut += CHUNK;
        const due = t0 + (((k + 1) * CHUNK) / this.o.rate) * 1000;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
      }
      await ep.end();
      const got = await reader;
      const total = chunks * CHUNK;
      const t = ep.trailer;
      if (got.bytes !== total || got.sum !== sum) this.failed.add('echo mismatch');
      else if (t?.bytes !== total || t.sum !== sum) this.failed.add('trailer mismatch');
      else this.ok++;
    } catch (err) {
      this.failed.add(bucket(errText(err)));
      ep?.reset();
    }
  }

  private async readAll(ep: ChannelEndpoint): Promise<{ bytes: number; sum: number }> {
    let bytes = 0;
    let sum = 0;
    for (;;) {
      const c = await ep.read();
      if (c === null) return { bytes, sum };
      bytes += c.byteLength;
      sum += sumOf(c);
      this.bytesEchoed += c.byteLength;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// (d) reconnect churn

type Json = Record<string, unknown>;

/** A lean device on RawWs: registers, answers commands after `delayMs`; `destroy()` drops it without a close. */
async function rawDevice(ep: Endpoint, id: string, delayMs: number): Promise<RawWs> {
  const ws = await RawWs.connect({
    host: ep.host,
    port: ep.port,
    path: `/ws?token=${encodeURIComponent(ep.token)}`,
  });
  return new Promise<RawWs>((resolve, reject) => {
    let registered = false;
    const timer = setTimeout(() => {
      ws.destroy();
      reject(new Error('no registration reply within 10 s'));
    }, 10_000);
    ws.onMessage = (data) => {
      let m: Json;
      try {
        m = JSON.parse(typeof data === 'string' ? data : data.toString('utf8')) as Json;
      } catch {
        return;
      }
      if (!registered) {
        clearTimeout(timer);
        if (m.type === 'heartbeat' && m.status === 'ok') {
          registered = true;
          resolve(ws);
        } else {
          ws.destroy();
          reject(new Error(`registration refused: ${String(m.error)}`));
        }
        return;
      }
      if (m.type !== 'command') return;
      const actions = Array.isArray(m.actions) ? (m.actions as Json[]) : [];
      setTimeout(() => {
        ws.send(
          JSON.stringify({
            type: 'command_results',
            status: 'continue',
            client_id: id,
            session_id: m.session_id,
            prev_response_id: m.response_id,
            action_results: actions.map((a) => ({
              status: 'success',
              result: 'ok',
              call_id: a?.call_id ?? null,
            })),
          }),
          false,
        );
      }, delayMs);
    };
    ws.onClose = (code) => {
      if (registered) return;
      clearTimeout(timer);
      reject(new Error(`closed during registration (code ${code})`));
    };
    ws.send(JSON.stringify(deviceRegister(id)), false);
  });
}

export const CHURN_KINDS = [
  'register-then-drop',
  'task-then-kill-device',
  'client-task-then-close',
  'drop-while-registering',
  'drop-after-handshake',
] as const;
type ChurnKind = (typeof CHURN_KINDS)[number];

export class ChurnLoad {
  readonly cycles = new Counter();
  readonly failures = new Counter();
  skipped = 0;
  private controller: AipControllerClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private inflight = new Set<Promise<void>>();
  private n = 0;

  constructor(
    private readonly ep: Endpoint,
    private readonly perS: number,
    private readonly heartbeatMs: number,
    private readonly tracker: TaskTracker,
    private readonly k: SoakCounters,
  ) {}

  async connect(): Promise<void> {
    this.controller = new AipControllerClient({
      url: this.ep.url,
      token: this.ep.token,
      clientId: 'soak-churn-ctl',
      reconnect: false,
      heartbeatIntervalMs: this.heartbeatMs,
    });
    watch(this.controller, 'churn controller', this.k, this.tracker);
    await this.controller.connect();
  }

  start(): void {
    if (this.perS <= 0) return;
    this.timer = setInterval(() => this.tick(), 1000 / this.perS);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all([...this.inflight]);
  }

  async close(): Promise<void> {
    await this.controller?.close();
  }

  private tick(): void {
    if (this.inflight.size >= 8) {
      this.skipped++;
      return;
    }
    const n = this.n++;
    const kind = CHURN_KINDS[n % CHURN_KINDS.length]!;
    const p = this.cycle(kind, n).then(
      () => this.cycles.add(kind),
      (err: unknown) => this.failures.add(`${kind}: ${bucket(errText(err))}`),
    );
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  private async cycle(kind: ChurnKind, n: number): Promise<void> {
    const id = `soak-churn-${n}`;
    const ctl = this.controller!;
    switch (kind) {
      case 'register-then-drop': {
        const ws = await rawDevice(this.ep, id, 0);
        ws.destroy();
        return;
      }
      case 'task-then-kill-device': {
        const ws = await rawDevice(this.ep, id, 20);
        const sid = `soak-churn-task-${n}`;
        const ended = this.tracker.request(sid, 'churn');
        try {
          await ctl.requestTask({ request: plan(20), sessionId: sid, targetId: id });
        } catch (err) {
          this.tracker.refusedWith(sid, errText(err));
          ws.destroy();
          throw err;
        }
        await sleep(30 + Math.random() * 220);
        this.tracker.killed(sid);
        ws.destroy();
        await Promise.race([ended, sleep(15_000)]);
        return;
      }
      case 'client-task-then-close': {
        const dev = new AipDeviceClient({
          url: this.ep.url,
          token: this.ep.token,
          clientId: id,
          reconnect: false,
          onCommand: okResults,
        });
        dev.on('error', () => undefined);
        try {
          await dev.connect();
          const sid = `soak-churn-task-${n}`;
          const ended = this.tracker.request(sid, 'churn');
          try {
            await ctl.requestTask({ request: plan(3), sessionId: sid, targetId: id });
          } catch (err) {
            this.tracker.refusedWith(sid, errText(err));
            throw err;
          }
          await Promise.race([ended, sleep(15_000)]);
        } finally {
          await dev.close();
        }
        return;
      }
      case 'drop-while-registering': {
        const ws = await RawWs.connect({
          host: this.ep.host,
          port: this.ep.port,
          path: `/ws?token=${encodeURIComponent(this.ep.token)}`,
        });
        ws.send(JSON.stringify(deviceRegister(id, {})), false);
        ws.destroy();
        return;
      }
      case 'drop-after-handshake': {
        const ws = await RawWs.connect({
          host: this.ep.host,
          port: this.ep.port,
          path: `/ws?token=${encodeURIComponent(this.ep.token)}`,
        });
        ws.destroy();
        return;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// (e) bad frames

interface BadFrame {
  readonly kind: string;
  readonly data: string | Buffer;
  readonly binary: boolean;
  /** The error names (protocol/errors.ts) an answer may carry. */
  readonly expect: readonly string[];
}

const deep = (n: number): string => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
export const BAD_FRAMES: readonly BadFrame[] = [
  { kind: 'malformed-json', data: '{"type":"heartbeat","status":', binary: false, expect: ['INVALID_JSON'] },
  {
    kind: 'malformed-json-garbage',
    data: 'not json at all \u00e9\u4e2d ' + 'x'.repeat(4000),
    binary: false,
    expect: ['INVALID_JSON'],
  },
  {
    kind: 'wrong-types',
    data: '{"type":"heartbeat","status":42,"client_type":["device"],"client_id":{"x":1}}',
    binary: false,
    expect: ['VALIDATION'],
  },
  {
    kind: 'wrong-type-task',
    data: '{"type":"task","status":"continue","request":12345,"session_id":7}',
    binary: false,
    expect: ['VALIDATION'],
  },
  {
    kind: 'oversized-id',
    data: JSON.stringify({
      type: 'heartbeat',
      status: 'ok',
      client_type: 'device',
      client_id: 'x'.repeat(300),
    }),
    binary: false,
    expect: ['VALIDATION'],
  },
  {
    kind: 'oversized-session-id',
    data: JSON.stringify({ type: 'task', status: 'continue', request: 'r', session_id: 's'.repeat(5000) }),
    binary: false,
    expect: ['VALIDATION'],
  },
  {
    kind: 'invalid-utf8-binary',
    data: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]),
    binary: true,
    expect: ['INVALID_UTF8'],
  },
  { kind: 'deep-objects', data: deep(200), binary: false, expect: ['TOO_DEEP'] },
  {
    kind: 'deep-arrays',
    data: `{"type":"heartbeat","x":${'['.repeat(5000)}${']'.repeat(5000)}}`,
    binary: false,
    expect: ['TOO_DEEP'],
  },
  {
    kind: 'deep-arrays-binary-64k',
    data: Buffer.from('['.repeat(32768) + ']'.repeat(32768)),
    binary: true,
    expect: ['TOO_DEEP'],
  },
  { kind: 'not-an-object', data: '[1,2,3]', binary: false, expect: ['NOT_AN_OBJECT'] },
  {
    kind: 'unknown-type',
    data: '{"type":"no_such_type","status":"ok"}',
    binary: false,
    expect: ['VALIDATION', 'UNKNOWN_MESSAGE_TYPE'],
  },
  {
    kind: 'proto-key',
    data: '{"type":"heartbeat","status":"ok","__proto__":{"polluted":true}}',
    binary: false,
    expect: ['FORBIDDEN_KEY'],
  },
];

export class BadFrameLoad {
  /** Bad frames sent, by kind. */
  readonly sent = new Counter();
  /** `kind → answer` (the catalogue name of the error frame, or what else came back). */
  readonly answers = new Counter();
  /** One-shot connections, by `kind → outcome`. */
  readonly oneShots = new Counter();
  private ws: WebSocket | null = null;
  private outstanding: BadFrame[] = [];
  private timer: NodeJS.Timeout | null = null;
  private n = 0;
  private reconnecting = false;
  private readonly shots = new Set<Promise<void>>();

  constructor(
    private readonly ep: Endpoint,
    private readonly perS: number,
    private readonly k: SoakCounters,
  ) {}

  get unanswered(): number {
    return this.outstanding.length;
  }

  async connect(): Promise<void> {
    const ws = await this.open();
    this.outstanding = [];
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on('close', (code) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.k.stopping) return;
      this.k.errors.add(`bad-frame client closed by the server (code ${code})`);
      if (this.outstanding.length)
        this.k.errors.add('bad frames unanswered at a close', this.outstanding.length);
      this.outstanding = [];
      if (!this.reconnecting) {
        this.reconnecting = true;
        void sleep(1000)
          .then(() => this.connect())
          .catch((err: unknown) => this.k.errors.add(`bad-frame client reconnect: ${bucket(errText(err))}`))
          .finally(() => (this.reconnecting = false));
      }
    });
    this.ws = ws;
  }

  start(): void {
    if (this.perS <= 0) return;
    this.timer = setInterval(() => this.tick(), 1000 / this.perS);
  }

  /** Stops sending and waits (up to 5 s) for the last answers. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const end = Date.now() + 5000;
    while (this.outstanding.length > 0 && Date.now() < end) await sleep(20);
    await Promise.all([...this.shots]);
  }

  close(): void {
    this.ws?.close(1000);
  }

  /** A registered `ws` connection. */
  private open(register = true): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${this.ep.url}?token=${encodeURIComponent(this.ep.token)}`);
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error('bad-frame client: no registration within 10 s'));
      }, 10_000);
      ws.on('error', () => undefined);
      ws.once('close', (code) => {
        clearTimeout(timer);
        reject(new Error(`closed before registering (code ${code})`));
      });
      ws.once('open', () => {
        if (!register) {
          clearTimeout(timer);
          return resolve(ws);
        }
        ws.once('message', (data: RawData) => {
          clearTimeout(timer);
          const m = JSON.parse(rawText(data)) as Json;
          if (m.type === 'heartbeat' && m.status === 'ok') resolve(ws);
          else reject(new Error(`registration refused: ${String(m.error)}`));
        });
        ws.send(JSON.stringify(deviceRegister(`soak-bad-${this.n}-${Date.now()}`)));
      });
    });
  }

  private tick(): void {
    const n = this.n++;
    if (n % 10 === 9) {
      const p = this.oneShot(n % 20 === 9 ? 'bad-first-frame' : 'invalid-utf8-text').catch((err: unknown) =>
        this.k.errors.add(`bad-frame one-shot: ${bucket(errText(err))}`),
      );
      this.shots.add(p);
      void p.finally(() => this.shots.delete(p));
      return;
    }
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const f = BAD_FRAMES[n % BAD_FRAMES.length]!;
    this.outstanding.push(f);
    this.sent.add(f.kind);
    ws.send(f.data, { binary: f.binary });
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    const f = this.outstanding.shift();
    let answer: string;
    try {
      const m = JSON.parse(rawText(data)) as Json;
      answer =
        m.type === 'error'
          ? errorName(typeof m.error === 'string' ? m.error : '')
          : `a ${String(m.type)} frame`;
    } catch {
      answer = isBinary ? 'a binary frame' : 'an undecodable frame';
    }
    if (f === undefined) {
      this.k.errors.add(`bad-frame client: unsolicited ${answer}`);
      return;
    }
    this.answers.add(`${f.kind} → ${answer}`);
    if (!/^[A-Z0-9_]+$/.test(answer))
      this.k.errors.add(`bad frame ${f.kind} was answered with ${answer}, not an error`);
    else if (!f.expect.includes(answer))
      this.k.errors.add(`bad frame ${f.kind} was answered ${answer}, expected ${f.expect.join(' or ')}`);
  }

  /** A fresh connection that must be closed by the server: `[close code]` is the expected outcome. */
  private async oneShot(kind: 'bad-first-frame' | 'invalid-utf8-text'): Promise<void> {
    const ws = await this.open(kind === 'invalid-utf8-text');
    const code = await new Promise<number | 'timeout'>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), 5000);
      ws.once('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
      if (kind === 'bad-first-frame') ws.send('{"type":"register","status":');
      else ws.send(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]), { binary: false });
    });
    if (code === 'timeout') ws.terminate();
    this.oneShots.add(`${kind} → ${code === 'timeout' ? 'not closed within 5 s' : `close ${code}`}`);
    // README: uWS validates text frames itself and drops one with invalid UTF-8 without a close frame (1006).
    const expected = kind === 'bad-first-frame' ? [4000] : [1006, 1007];
    if (code === 'timeout' || !expected.includes(code))
      this.k.errors.add(`one-shot ${kind}: expected close ${expected.join(' or ')}, got ${code}`);
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return (Buffer.isBuffer(data) ? data : Buffer.from(data)).toString('utf8');
}
