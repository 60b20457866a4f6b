/**
 * ChannelLoad (the soak's data channels): device/controller pairs with attachChannelMux; each pair holds a one-step
 * `hold` task while it opens `stream` channels one after another, echoed by the device and checked by the controller.
 */
import { performance } from 'node:perf_hooks';
import type { ResultInput } from '../../protocol/index.js';
import type { ChannelEndpoint } from '../../src/channel/endpoint.js';
import type { ChannelMux, IncomingChannel } from '../../src/channel/mux.js';
import { attachChannelMux } from '../../src/client/channels/attach.js';
import { AipControllerClient, AipDeviceClient } from '../../src/client/index.js';
import { sleep, watch, type Endpoint } from './soak-clients.js';
import { bucket, Counter, errText, type SoakCounters } from './soak-counters.js';
import type { TaskTracker } from './soak-task-tracker.js';

const HOLD_PLAN = JSON.stringify({
  task: 'soak hold',
  steps: [{ actions: [{ tool_name: 'hold', tool_type: 'action', parameters: {} }] }],
});

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

  /** Stops each loop after its current channel, which then releases its held command so its hold task completes. */
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
