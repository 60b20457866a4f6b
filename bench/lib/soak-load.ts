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
 *   invalid-UTF-8 text frame after registering (expect close 1007, or 1006: uWS drops the socket without a close frame).
 *
 * Every task is tracked by session id (TaskTracker) from its request to its `task_end`.
 *
 * Modules: soak-counters.ts (Counter, SoakCounters, error names and buckets), soak-task-tracker.ts, soak-clients.ts
 * (the shared client plumbing), soak-channel-load.ts, soak-churn-load.ts, soak-bad-frames.ts; this one holds
 * TaskLoad and its Pacer and re-exports the rest.
 */
import { performance } from 'node:perf_hooks';
import { AipControllerClient, AipDeviceClient } from '../../src/client/index.js';
import { okResults, plan, sleep, watch, type Endpoint } from './soak-clients.js';
import { errText, type SoakCounters } from './soak-counters.js';
import type { TaskTracker } from './soak-task-tracker.js';

export { BAD_FRAMES, BadFrameLoad } from './soak-bad-frames.js';
export { ChannelLoad, type ChannelLoadOptions } from './soak-channel-load.js';
export { CHURN_KINDS, ChurnLoad } from './soak-churn-load.js';
export { plan, sleep, type Endpoint } from './soak-clients.js';
export { bucket, Counter, errorName, type SoakCounters } from './soak-counters.js';
export { TaskTracker, type LostTask, type TaskKind } from './soak-task-tracker.js';

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
