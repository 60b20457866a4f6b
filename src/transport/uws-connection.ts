/**
 * One uWS WebSocket as the server's `Connection` (part of the uWebSockets.js adapter, uws.ts): every send goes
 * through its OutboundQueue (lossless and backpressure-aware, see outbound.ts), and a close waits for the frames
 * queued before it.
 */
import type uWS from 'uWebSockets.js';
import { CloseCode } from '../../protocol/index.js';
import { MAX_CLOSE_REASON_BYTES, utf8Prefix } from '../lib/truncate.js';
import { uuid } from '../lib/uuid.js';
import type { Connection, SocketHandler } from './connection.js';
import { OutboundQueue, type RawSocket, type WriteResult } from './outbound.js';
import type { TransportOptions } from './transport.js';

export interface UserData {
  path: string;
  protocol: string | null;
  remoteAddress: string;
  conn?: UwsConnection;
}

/**
 * The send that `UwsConnection.write` runs inside a cork, and its arguments: one function for every send, not a
 * closure per send. uWS runs the cork's callback at once; a write nested in a send (a close handler's) reads its
 * arguments before it calls, and the outer send's result is stored after the nested one's.
 */
const corked: {
  ws: uWS.WebSocket<UserData> | null;
  data: string | Uint8Array | null;
  isBinary: boolean;
  result: WriteResult;
} = { ws: null, data: null, isBinary: false, result: 1 };
function sendCorked(): void {
  corked.result = corked.ws!.send(corked.data!, corked.isBinary) as WriteResult;
}

/** One WebSocket; it is also its outbound queue's RawSocket (no closures per connection). */
export class UwsConnection implements Connection, RawSocket {
  readonly id = uuid(); // one flat string (56 B), held for the connection's life
  closed = false;
  handler: SocketHandler | null = null;
  readonly out: OutboundQueue;
  /** A close asked for while frames waited in the outbound queue: it happens once they are out (see close()). */
  private closing: { code: number; reason: string } | null = null;
  /** Bounds that wait: a peer that stops reading is terminated after `slowConsumerTimeoutMs`. */
  private closeTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ws: uWS.WebSocket<UserData>,
    readonly path: string,
    readonly protocol: string | null,
    readonly remoteAddress: string,
    private readonly opts: TransportOptions,
  ) {
    this.out = new OutboundQueue(this, opts.limits);
  }

  /** RawSocket: one corked send (a send outside a uWS callback is not corked by uWS itself). */
  write(data: string | Uint8Array, isBinary: boolean): WriteResult {
    corked.ws = this.ws;
    corked.data = data;
    corked.isBinary = isBinary;
    this.ws.cork(sendCorked);
    corked.ws = corked.data = null; // the frame is not kept
    return corked.result;
  }

  buffered(): number {
    return this.ws.getBufferedAmount();
  }

  backpressure(over: boolean, bytes: number): void {
    this.opts.onBackpressure?.(this, over, bytes);
  }

  send(data: string | Uint8Array, isBinary: boolean): boolean {
    if (this.closed) return false;
    this.out.send(data, isBinary);
    return true;
  }

  bufferedBytes(): number {
    return this.closed ? 0 : this.out.bufferedBytes();
  }

  /**
   * Closes with a close handshake. Frames still in the outbound queue go first (a close must not lose what was sent
   * before it, e.g. the error frame that says why): the connection counts as closed at once (no more sends), and
   * the close frame follows when the queue is empty (`flushed()`), or the connection is terminated after
   * `slowConsumerTimeoutMs` if the peer does not read it.
   */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    // A reason cut inside a character is invalid UTF-8, and a conforming client then fails the connection (1006)
    this.closing = { code, reason: utf8Prefix(reason, MAX_CLOSE_REASON_BYTES) };
    if (!this.flushed())
      this.closeTimer = setTimeout(() => this.terminate(), this.opts.limits.slowConsumerTimeoutMs);
  }

  /** After a drain: a close that waited for the queue goes once the queue is empty. True if it went. */
  flushed(): boolean {
    if (!this.closing || this.out.queuedFrameBytes > 0) return false;
    const { code, reason } = this.closing;
    this.closing = null;
    this.markClosed();
    this.ws.end(code, reason);
    return true;
  }

  /** Closes at once, without a close handshake (a close waiting for the queue included). */
  terminate(): void {
    if (this.closed && !this.closing) return;
    this.closing = null;
    this.markClosed();
    this.ws.close();
  }

  /** Closed for good (or the peer closed): nothing more goes out, a waiting close included. */
  markClosed(): void {
    this.closed = true;
    this.closing = null;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.out.stop();
  }

  /** RawSocket: the outbound queue found this consumer too slow. */
  slow(): void {
    // A close that waited for the queue, and the peer still does not read: end it now.
    if (this.closing) return this.terminate();
    if (this.closed) return;
    this.opts.log.warn({ conn: this.id, queued: this.out.queuedFrameBytes }, 'closing slow consumer');
    const handler = this.handler;
    // At once, dropping what it did not read (close() would wait for the queue: that is what is too slow).
    this.markClosed();
    this.ws.end(CloseCode.SLOW_CONSUMER, 'slow consumer: outbound buffer over budget');
    // uWS will also call `close`; the handler ignores the second notification.
    handler?.closed(CloseCode.SLOW_CONSUMER);
  }
}
