/**
 * Rate limiting for the load generators (the bench's latency mode): items queue up as they become ready (a device
 * that got its `command`, an echo connection whose reply came back) and a 1 ms timer releases them in FIFO order
 * at `rate` per second in total. Slots with nothing ready are not saved up beyond one item, so a stall is not
 * followed by a burst: latency is measured at the given rate, not above it.
 */
import { performance } from 'node:perf_hooks';

export class Pacer<T> {
  private queue: T[] = [];
  private head = 0;
  private credit = 0;
  private last = performance.now();
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    /** Releases per second, over all items. */
    readonly rate: number,
    private readonly release: (item: T) => void,
  ) {
    if (!(rate > 0)) throw new Error(`pacer rate must be positive, got ${rate}`);
  }

  start(): void {
    if (this.timer) return;
    this.last = performance.now();
    this.credit = 0;
    this.timer = setInterval(() => this.tick(), 1);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.queue = [];
    this.head = 0;
  }

  push(item: T): void {
    this.queue.push(item);
  }

  private tick(): void {
    const now = performance.now();
    this.credit += ((now - this.last) / 1000) * this.rate;
    this.last = now;
    while (this.credit >= 1 && this.head < this.queue.length) {
      this.credit--;
      this.release(this.queue[this.head++]!);
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
      if (this.credit > 1) this.credit = 1;
    } else if (this.head > 1024) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
