/**
 * The in-memory transport: the server's twin of the uWS adapter with no sockets, in the spirit of `ws`'s duplex
 * pairs and fastify's `inject()`. `connect()` gives the client end of a connected pair; `inject()` runs one HTTP
 * request through the same handler a real server uses, and `injectStream()` one whose response is streamed (SSE),
 * with a reader that can pause (backpressure) and abort. Frames cross in a microtask, as bytes, so ordering and
 * re-entrancy match a real socket; text frames reach the server as bytes, as uWS delivers them.
 */
import { randomUUID } from 'node:crypto';
import { MAX_CLOSE_REASON_BYTES, utf8Prefix } from '../lib/truncate.js';
import { Readable } from 'node:stream';
import { CloseCode } from '../../protocol/index.js';
import type { Connection, SocketHandler } from './connection.js';
import { INTERNAL_ERROR, type HttpRequestHead, type HttpResponse, type HttpStream } from './http.js';
import { byteLength, OutboundQueue, WriteResult } from './outbound.js';
import { maxPayloadOn, type Transport, type TransportOptions } from './transport.js';

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

class MemoryConnection implements Connection {
  readonly id = randomUUID();
  readonly remoteAddress = 'memory';
  closed = false;
  handler: SocketHandler | null = null;
  client: MemoryClientSocket | null = null;
  private inFlight = 0;
  private readonly out: OutboundQueue;
  /** As in uws.ts: a close asked for while frames waited in the outbound queue, and what bounds that wait. */
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

  /** As in uws.ts: frames still in the outbound queue go first, then the close (bounded by the slow-consumer clock). */
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

export interface InjectRequest {
  readonly method: string;
  /** The path, optionally with `?query`. */
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** A string or bytes as is; anything else is sent as JSON. */
  readonly body?: unknown;
}

export interface InjectResponse extends HttpResponse {
  /** The body as the client would read it (JSON bodies decoded). */
  readonly json: unknown;
  readonly text: string;
}

/**
 * The client end of a streamed response (`injectStream`): the chunks so far, and a reader that can stop reading
 * (the server's writes then report backpressure, and what it writes is held as a socket would) and go away.
 */
export class InjectedStream {
  readonly chunks: (string | Uint8Array)[] = [];
  private open = true;
  private paused = false;
  /** Chunks written while paused: the "socket buffer", delivered on resume. */
  private held: (string | Uint8Array)[] = [];
  private readonly waiters: (() => void)[] = [];

  constructor(
    readonly status: number,
    readonly headers: Readonly<Record<string, string>>,
    private readonly stream: HttpStream,
    private readonly gone: (s: InjectedStream) => void,
  ) {}

  /** Starts the stream (the transport calls this once the head is "sent"). */
  start(): void {
    this.stream.open({
      write: (chunk) => {
        if (!this.open) return false;
        if (this.paused) {
          this.held.push(chunk);
          return false;
        }
        this.deliver(chunk);
        return true;
      },
      end: () => this.finish(),
      abort: () => {
        this.aborted = true;
        this.finish();
      },
    });
  }

  /** True when the server broke the response off (`sink.abort()`). */
  aborted = false;

  /** Everything received so far, as text. */
  get text(): string {
    return this.chunks.map((c) => (typeof c === 'string' ? c : Buffer.from(c).toString())).join('');
  }

  /** Everything received so far, as bytes. */
  get bytes(): Buffer {
    return Buffer.concat(this.chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : Buffer.from(c))));
  }

  get ended(): boolean {
    return !this.open;
  }

  /** Bytes the server wrote that this reader has not taken (while paused). */
  get heldBytes(): number {
    return this.held.reduce((n, c) => n + (typeof c === 'string' ? Buffer.byteLength(c) : c.byteLength), 0);
  }

  /** Resolves with the text once `pred(text)` holds; rejects if the stream ends first or after `timeoutMs`. */
  async until(pred: (text: string) => boolean, timeoutMs = 5_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.text)) {
      if (!this.open) throw new Error(`stream ended before the expected text; got: ${this.text}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for the stream; got: ${this.text}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.text;
  }

  /** Resolves once the stream has ended (by the server, or `abort`). */
  async whenEnded(timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.open) {
      if (Date.now() > deadline) throw new Error('stream did not end');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 20);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Stops reading: writes report backpressure and are held until `resume`. */
  pause(): void {
    this.paused = true;
  }

  /** Takes what was held, then tells the stream it may write again. */
  resume(): void {
    this.paused = false;
    for (const c of this.held.splice(0)) this.deliver(c);
    if (this.open) this.stream.drain();
  }

  /** The client goes away. */
  abort(): void {
    this.finish();
  }

  /** Ends the stream from the server side (closing the transport). */
  finish(): void {
    if (!this.open) return;
    this.open = false;
    this.held = []; // a socket closed with bytes in it: the reader never gets them
    this.gone(this);
    this.stream.close();
    this.wake();
  }

  private deliver(chunk: string | Uint8Array): void {
    this.chunks.push(typeof chunk === 'string' ? chunk : chunk.slice());
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

export class MemoryTransport implements Transport {
  readonly port = 0;
  private readonly live = new Set<MemoryConnection>();
  private readonly streams = new Set<InjectedStream>();
  private listening = true;

  constructor(private readonly opts: TransportOptions) {}

  /**
   * Opens a connection as a client would: `query` carries the token, `protocol` the subprotocol offer, `path` the
   * WebSocket path (`/ws`, or a session's `/sessions/{id}/stream`).
   */
  connect(
    query = '',
    protocol: string | null = null,
    path = '/ws',
  ): MemoryClientSocket | { refused: HttpResponse } {
    if (!this.listening) return { refused: { status: 503, body: 'not listening' } };
    const headers: Record<string, string> = protocol ? { 'sec-websocket-protocol': protocol } : {};
    const decision = this.opts.acceptUpgrade({ method: 'GET', path, query, headers });
    if (!decision.accept) return { refused: { status: decision.status, body: decision.body } };
    const conn = new MemoryConnection(path, decision.protocol, this.opts, (c) => this.live.delete(c));
    const client = new MemoryClientSocket(conn);
    conn.client = client;
    this.live.add(conn);
    conn.handler = this.opts.onConnection(conn);
    return client;
  }

  /**
   * One HTTP request through the server's handler, head first, as the uWS adapter does it. A streamed response is
   * ended as soon as it opened: `text` is what it wrote at once (use `injectStream` to read one).
   */
  async inject(req: InjectRequest): Promise<InjectResponse> {
    const res = await this.respond(req);
    if (res.stream) {
      const s = new InjectedStream(res.status, res.headers ?? {}, res.stream, () => undefined);
      s.start();
      s.finish();
      return { status: res.status, body: s.text, headers: res.headers ?? {}, json: undefined, text: s.text };
    }
    return toInjectResponse(res);
  }

  /**
   * One HTTP request whose response may be streamed: a streamed one is started and handed over to read (close it
   * with `abort()`); anything else is returned whole, as `inject` would.
   */
  async injectStream(req: InjectRequest): Promise<InjectedStream | InjectResponse> {
    const res = await this.respond(req);
    if (!res.stream) return toInjectResponse(res);
    const s = new InjectedStream(res.status, res.headers ?? {}, res.stream, (x) => this.streams.delete(x));
    this.streams.add(s);
    s.start();
    return s;
  }

  private async respond(req: InjectRequest): Promise<HttpResponse> {
    const q = req.url.indexOf('?');
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = v;
    const head: HttpRequestHead = {
      method: req.method.toUpperCase(),
      path: q === -1 ? req.url : req.url.slice(0, q),
      query: q === -1 ? '' : req.url.slice(q + 1),
      headers,
    };
    const body = encodeBody(req.body);
    const early = this.opts.http.head(head);
    let res: HttpResponse;
    if (early) res = early;
    else if (this.opts.http.streamsBody(head))
      res = await Promise.resolve(
        this.opts.http.handle({ ...head, body: new Uint8Array(0) }, Readable.from([Buffer.from(body)])),
      ).catch(() => INTERNAL_ERROR);
    else if (body.byteLength > this.opts.limits.maxHttpBodyBytes)
      res = { status: 413, body: { detail: 'Request body too large' } };
    else res = await Promise.resolve(this.opts.http.handle({ ...head, body })).catch(() => INTERNAL_ERROR);
    return this.opts.http.finish ? this.opts.http.finish(head, res) : res;
  }

  stopListening(): void {
    this.listening = false;
  }

  closeAll(): void {
    this.listening = false;
    for (const conn of [...this.live]) conn.close(1006, '');
    for (const s of [...this.streams]) s.finish();
  }

  connections(): Iterable<Connection> {
    return this.live.values();
  }
}

function toInjectResponse(res: HttpResponse): InjectResponse {
  const text =
    typeof res.body === 'string'
      ? res.body
      : res.body instanceof Uint8Array
        ? new TextDecoder().decode(res.body)
        : JSON.stringify(res.body);
  let json: unknown = res.body;
  if (typeof res.body === 'string' || res.body instanceof Uint8Array) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { ...res, json, text };
}

function encodeBody(body: unknown): Uint8Array {
  if (body === undefined) return new Uint8Array(0);
  if (body instanceof Uint8Array) return body;
  return new TextEncoder().encode(typeof body === 'string' ? body : JSON.stringify(body));
}
