/**
 * The lossless, backpressure-aware outbound path of one connection (perf-baselines.md §8), independent of the
 * socket library: frames go straight to the socket while its buffer is under the high-water mark, otherwise into
 * this queue, flushed on drain. A write the socket reports as DROPPED is queued again, never lost. A connection
 * whose pending bytes stay over budget past the slow-consumer timeout, or ever exceed budget × hard cap, is
 * reported slow (the owner closes it with 4008).
 */
import type { TransportLimits } from './transport.js';

/** What a socket write did: sent, sent but now backpressured, or dropped (uWS's 1, 0 and 2). */
export const WriteResult = { SENT: 1, BACKPRESSURE: 0, DROPPED: 2 } as const;
export type WriteResult = (typeof WriteResult)[keyof typeof WriteResult];

export interface RawSocket {
  write(data: string | Uint8Array, isBinary: boolean): WriteResult;
  /** Bytes the socket layer holds. */
  buffered(): number;
  /** Told when the consumer is slow, unless the queue was given its own `onSlow`. */
  slow?(): void;
  /** Told when the pending bytes go over (true) or back under (false) budget, unless given `onBackpressure`. */
  backpressure?(over: boolean, bytes: number): void;
}

interface Item {
  readonly data: string | Uint8Array;
  readonly isBinary: boolean;
}

export class OutboundQueue {
  private readonly queue: Item[] = [];
  private queuedBytes = 0;
  private overBudgetTimer: NodeJS.Timeout | null = null;
  private over = false;
  private stopped = false;

  /**
   * `onSlow` / `onBackpressure` default to the socket's own `slow` / `backpressure` methods (a connection that is
   * its own RawSocket then needs no closures: fewer objects per idle connection).
   */
  constructor(
    private readonly socket: RawSocket,
    private readonly limits: TransportLimits,
    private readonly onSlow: (() => void) | null = null,
    private readonly onBackpressure: ((over: boolean, bytes: number) => void) | null = null,
  ) {}

  private slow(): void {
    if (this.onSlow) this.onSlow();
    else this.socket.slow?.();
  }

  private notify(over: boolean, bytes: number): void {
    if (this.onBackpressure) this.onBackpressure(over, bytes);
    else this.socket.backpressure?.(over, bytes);
  }

  send(data: string | Uint8Array, isBinary: boolean): void {
    if (this.stopped) return;
    if (this.queue.length > 0 || this.socket.buffered() > this.limits.highWaterMarkBytes) {
      this.enqueue(typeof data === 'string' ? data : data.slice(), isBinary, false);
      return;
    }
    const r = this.socket.write(data, isBinary);
    if (r === WriteResult.DROPPED)
      this.enqueue(typeof data === 'string' ? data : data.slice(), isBinary, true);
    else if (r === WriteResult.BACKPRESSURE) this.checkBudget();
  }

  /** On drain: moves queued frames to the socket while it is under the high-water mark. */
  flush(): void {
    while (
      !this.stopped &&
      this.queue.length > 0 &&
      this.socket.buffered() <= this.limits.highWaterMarkBytes
    ) {
      const item = this.queue.shift()!;
      if (this.socket.write(item.data, item.isBinary) === WriteResult.DROPPED) {
        this.queue.unshift(item);
        break;
      }
      this.queuedBytes -= byteLength(item.data);
    }
    this.checkBudget();
  }

  bufferedBytes(): number {
    return this.stopped ? 0 : this.socket.buffered() + this.queuedBytes;
  }

  /** The connection closed: drop everything and stop the clock. */
  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    if (this.overBudgetTimer) clearTimeout(this.overBudgetTimer);
    this.overBudgetTimer = null;
  }

  private enqueue(data: string | Uint8Array, isBinary: boolean, front: boolean): void {
    if (front) this.queue.unshift({ data, isBinary });
    else this.queue.push({ data, isBinary });
    this.queuedBytes += byteLength(data);
    this.checkBudget();
  }

  /**
   * Over budget: start the slow-consumer clock; far over (the hard cap): slow at once. Back under: stop it. The
   * hard cap is never below one frame of the largest size a client may send plus the budget, so that a single
   * accepted frame relayed whole (a command carrying a plan's 70 MiB parameter) does not close a reader that keeps
   * up; the clock still judges it.
   */
  private checkBudget(): void {
    const budget = this.limits.outboundBudgetBytes;
    const pending = this.bufferedBytes();
    const largest = this.limits.largestOutboundFrameBytes ?? this.limits.maxPayloadBytes;
    const hardCap = Math.max(budget * this.limits.slowConsumerHardCap, largest + budget);
    if (pending > hardCap) return this.slow();
    if (pending > budget) {
      if (!this.over) {
        this.over = true;
        this.notify(true, pending);
      }
      if (!this.overBudgetTimer) {
        this.overBudgetTimer = setTimeout(() => this.slow(), this.limits.slowConsumerTimeoutMs);
        this.overBudgetTimer.unref();
      }
    } else {
      if (this.over) {
        this.over = false;
        this.notify(false, pending);
      }
      if (this.overBudgetTimer) {
        clearTimeout(this.overBudgetTimer);
        this.overBudgetTimer = null;
      }
    }
  }

  get queuedFrameBytes(): number {
    return this.queuedBytes;
  }
}

export function byteLength(data: string | Uint8Array): number {
  return typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
}
