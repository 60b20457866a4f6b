/**
 * The two ends of one in-memory WebSocket connection (memory.ts): the client's `MemoryClientSocket` and the server's
 * `MemoryConnection`, which sends through the same outbound queue and close rules as the uWS adapter. Frames cross
 * in a microtask, as bytes.
 */
import { randomUUID } from 'node:crypto';
import { MAX_CLOSE_REASON_BYTES, utf8Prefix } from '../lib/truncate.js';
import { CloseCode } from '../../protocol/index.js';
import type { Connection, SocketHandler } from './connection.js';
import { byteLength, OutboundQueue, WriteResult } from './outbound.js';
import { maxPayloadOn, type TransportOptions } from './transport.js';

export interface MemoryFrame {
  readonly data: string | Uint8Array;
  readonly isBinary: boolean;
}

/** The client end of an in-memory connection. */
export class MemoryClientSocket {
  readonly protocol: string | null;
  /** Frames from the server not yet taken by a listener. */
  private readonly inbox: MemoryFrame[] = [];
  private listener: ((f: MemoryFrame) => void) | null = null;
  private closeInfo: { code: number; reason: string } | null = null;
  private readonly closeWaiters: ((c: { code: number; reason: string }) => void)[] = [];

  constructor(private readonly server: MemoryConnection) {
    this.protocol = server.protocol;
  }

  get closed(): boolean {
    return this.closeInfo !== null;
  }

  /**
   * Sends a frame to the server: a string is a text frame, bytes a binary frame unless `isBinary` is false (bytes
   * sent as a text frame, as a client may send invalid UTF-8 in one).
   */
  send(data: string | Uint8Array, isBinary = typeof data !== 'string'): void {
    if (this.closeInfo) return;
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    queueMicrotask(() => this.server.receive(buffer, isBinary));
  }

  /** Every frame from the server, in order; frames that came before the listener are replayed to it. */
  onFrame(listener: (f: MemoryFrame) => void): void {
    this.listener = listener;
    for (const f of this.inbox.splice(0)) listener(f);
  }

  /** Closes from the client side with a close handshake. */
  close(code = 1000, reason = ''): void {
    if (this.closeInfo) return;
    queueMicrotask(() => this.server.peerClosed(code)); // after the frames this client sent before closing
    this.closedBy(code, reason);
  }

  /** Drops the connection without a close frame (the server sees 1006). */
  terminate(): void {
    this.close(1006, '');
  }

  whenClosed(): Promise<{ code: number; reason: string }> {
    if (this.closeInfo) return Promise.resolve(this.closeInfo);
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  deliver(f: MemoryFrame): void {
    if (this.closeInfo) return;
    if (this.listener) this.listener(f);
    else this.inbox.push(f);
  }

  closedBy(code: number, reason: string): void {
    if (this.closeInfo) return;
    this.closeInfo = { code, reason };
    for (const w of this.closeWaiters.splice(0)) w(this.closeInfo);
  }
}

export class MemoryConnection implements Connection {
  readonly id = randomUUID();
  readonly remoteAddress = 'memory';
  closed = false;
  handler: SocketHandler | null = null;
  client: MemoryClientSocket | null = null;
  private inFlight = 0;
  private readonly out: OutboundQueue;
  /** As in uws-connection.ts: a close asked for while frames waited in the outbound queue, and what bounds that wait. */
  private closing: { code: number; reason: string } | null = null;
  private closeTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly path: string,
    readonly protocol: string | null,
    private readonly opts: TransportOptions,
    private readonly onGone: (c: MemoryConnection) => void,
  ) {
    this.out = new OutboundQueue(
      {
        write: (data, isBinary) => {
          const bytes = typeof data === 'string' ? data : data.slice();
          const size = byteLength(data);
          this.inFlight += size;
          queueMicrotask(() => {
            this.inFlight -= size;
            this.client?.deliver({ data: bytes, isBinary });
            this.out.flush(); // the in-memory "socket" drained: move frames queued over the high-water mark
            if (this.closing && this.out.queuedFrameBytes === 0) return this.finishClose();
            if (this.handler?.drained && this.bufferedBytes() <= opts.limits.highWaterMarkBytes)
              this.handler.drained();
          });
          return WriteResult.SENT;
        },
        buffered: () => this.inFlight,
      },
      opts.limits,
      // At once, dropping what it did not read (close() would wait for the queue: that is what is too slow).
      () => {
        if (this.closed && !this.closing) return;
        this.closing = {
          code: CloseCode.SLOW_CONSUMER,
          reason: 'slow consumer: outbound buffer over budget',
        };
        this.finishClose();
      },
      (over, bytes) => opts.onBackpressure?.(this, over, bytes),
    );
  }

  send(data: string | Uint8Array, isBinary: boolean): boolean {
    if (this.closed) return false;
    this.out.send(data, isBinary);
    return true;
  }

  bufferedBytes(): number {
    return this.closed ? 0 : this.out.bufferedBytes();
  }

  /** As in uws-connection.ts: frames still in the outbound queue go first, then the close (bounded by the slow-consumer clock). */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closing = { code, reason: utf8Prefix(reason, MAX_CLOSE_REASON_BYTES) };
    if (this.out.queuedFrameBytes === 0) this.finishClose();
    else this.closeTimer = setTimeout(() => this.finishClose(), this.opts.limits.slowConsumerTimeoutMs);
  }

  private finishClose(): void {
    if (!this.closing) return;
    const { code, reason } = this.closing;
    this.markClosed();
    // As with uWS, the close reaches the handler after `end()`, then the peer sees the close frame.
    queueMicrotask(() => {
      this.handler?.closed(code);
      this.client?.closedBy(code, reason);
    });
  }

  receive(data: ArrayBuffer, isBinary: boolean): void {
    if (this.closed) return;
    if (data.byteLength > maxPayloadOn(this.opts.limits, this.path)) {
      this.close(1009, 'frame too large');
      return;
    }
    this.handler?.message(data, isBinary);
  }

  peerClosed(code: number): void {
    if (this.closed && !this.closing) return;
    this.markClosed();
    this.handler?.closed(code);
  }

  private markClosed(): void {
    this.closed = true;
    this.closing = null;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.out.stop();
    this.onGone(this);
  }
}
