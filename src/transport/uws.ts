/**
 * The uWebSockets.js adapter: the only file that touches uWS.
 *
 * - `/ws`: the upgrade head goes to the server's `acceptUpgrade` (token and subprotocol) before anything else.
 * - Every send goes through the connection's OutboundQueue (lossless and backpressure-aware, see outbound.ts).
 * - HTTP: the head goes to the handler first, so a request can be refused before its body is read; then the body
 *   is read, bounded, and handed over.
 * - Streamed responses (SSE): chunked writes with real backpressure — a `write` that uWS reports as backed up
 *   makes the stream wait for `onWritable`; an abort or the server closing ends the stream (`close`).
 */
import { Readable } from 'node:stream';
import uWS from 'uWebSockets.js';
import { aipError, CloseCode } from '../../protocol/index.js';
import { MAX_CLOSE_REASON_BYTES, utf8Prefix } from '../lib/truncate.js';
import { uuid } from '../lib/uuid.js';
import type { Connection, SocketHandler } from './connection.js';
import {
  encodeHttpBody,
  CLIENT_CLOSED,
  INTERNAL_ERROR,
  statusLine,
  type HttpRequest,
  type HttpRequestHead,
  type HttpResponse,
  type HttpStream,
} from './http.js';
import { OutboundQueue, type RawSocket, type WriteResult } from './outbound.js';
import { EPHEMERAL_PORT_ATTEMPTS, freePort, ListenError, whyNotListening } from './listen.js';
import { maxPayloadOn, WS_PATHS, type Transport, type TransportOptions } from './transport.js';

interface UserData {
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
class UwsConnection implements Connection, RawSocket {
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

export function startUwsTransport(opts: TransportOptions): Promise<Transport> {
  const live = new Set<UwsConnection>();
  /** Streamed responses under way: each entry ends its stream (closing the server ends them all). */
  const streams = new Set<() => void>();
  const app = uWS.App();
  /** HTTP body bytes read and not yet answered, across all connections (bounded by maxHttpBodyBytesInFlight). */
  let bodyBytesInFlight = 0;
  const { limits } = opts;

  const behavior: uWS.WebSocketBehavior<UserData> = {
    compression: uWS.DISABLED,
    maxPayloadLength: limits.maxPayloadBytes,
    idleTimeout: limits.idleTimeoutSec,
    sendPingsAutomatically: limits.idleTimeoutSec > 0,
    maxBackpressure: limits.maxPayloadBytes + limits.highWaterMarkBytes * 2,
    closeOnBackpressureLimit: 0,
    upgrade: (res, req, context) => {
      const head = readHead(req);
      const key = req.getHeader('sec-websocket-key');
      const extensions = req.getHeader('sec-websocket-extensions');
      const decision = opts.acceptUpgrade(head);
      if (!decision.accept) {
        res.cork(() => {
          res
            .writeStatus(statusLine(decision.status))
            .writeHeader('content-type', 'text/plain')
            .end(decision.body);
        });
        return;
      }
      const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString();
      res.upgrade<UserData>(
        { path: head.path, protocol: decision.protocol, remoteAddress },
        key,
        decision.protocol ?? '',
        extensions,
        context,
      );
    },
    open: (ws) => {
      const ud = ws.getUserData();
      const conn = new UwsConnection(ws, ud.path, ud.protocol, ud.remoteAddress, opts);
      ud.conn = conn;
      live.add(conn);
      conn.handler = opts.onConnection(conn);
    },
    message: (ws, message, isBinary) => {
      ws.getUserData().conn?.handler?.message(message, isBinary);
    },
    drain: (ws) => {
      const conn = ws.getUserData().conn;
      if (!conn) return;
      conn.out.flush();
      if (conn.flushed()) return;
      if (conn.handler?.drained && conn.bufferedBytes() <= limits.highWaterMarkBytes) conn.handler.drained();
    },
    close: (ws, code) => {
      const conn = ws.getUserData().conn;
      if (!conn) return;
      live.delete(conn);
      conn.markClosed();
      conn.handler?.closed(code);
    },
  };
  for (const path of WS_PATHS)
    app.ws<UserData>(path, {
      ...behavior,
      maxPayloadLength: maxPayloadOn(limits, path),
    });

  app.any('/*', (res, req) => {
    let aborted = false;
    let size = 0;
    const chunks: Buffer[] = [];
    /** Ends a streamed response that is under way (set while one is). */
    let streamGone: (() => void) | null = null;
    /** The request's `signal`, made when a handler first asks for it; aborted when the client goes away. */
    let left: AbortController | null = null;
    let clientGone = false;
    const goneSignal = (): AbortSignal => {
      if (!left) {
        left = new AbortController();
        if (clientGone) left.abort();
      }
      return left.signal;
    };
    const gone = (): void => {
      clientGone = true;
      left?.abort();
    };
    const release = (): void => {
      bodyBytesInFlight -= size;
      size = 0;
      chunks.length = 0;
    };
    res.onAborted(() => {
      aborted = true;
      release();
      streamGone?.();
      gone();
    });
    const head = readHead(req);
    const write = (given: HttpResponse): void => {
      // Encoded before `finish` logs and counts it: an answer JSON cannot hold goes out, and is recorded, as 500.
      let answer = given;
      const encoded = answer.stream
        ? null
        : encodeHttpBody(answer, (err) =>
            opts.log.error({ err, status: given.status }, 'HTTP answer could not be encoded'),
          );
      if (encoded && encoded.status !== answer.status) answer = INTERNAL_ERROR;
      const out = opts.http.finish ? opts.http.finish(head, answer) : answer;
      if (aborted) {
        out.stream?.close(); // the client left before the answer: the stream must still release what it holds
        return;
      }
      aborted = true;
      if (out.stream || !encoded) {
        if (out.stream) streamGone = startStream(res, out, out.stream, streams);
        return;
      }
      const { status, contentType, body } = encoded;
      res.cork(() => {
        res.writeStatus(statusLine(status));
        res.writeHeader('content-type', contentType);
        for (const [k, v] of Object.entries(out.headers ?? {}))
          if (k !== 'content-type') res.writeHeader(k, v);
        res.end(body);
      });
    };
    const early = safely(() => opts.http.head(head), opts);
    if (early) return write(early);
    if (opts.http.streamsBody(head)) {
      const body = streamBody(res, () => aborted);
      res.onAborted(() => {
        aborted = true;
        body.destroy(new Error('request aborted by the client'));
        streamGone?.();
        gone();
      });
      void Promise.resolve()
        .then(() => opts.http.handle(request(head, new Uint8Array(0), goneSignal), body))
        .catch((err: unknown) => {
          // A client that leaves mid-body fails the handler's read: its fault, and nobody is left to answer.
          if (aborted) {
            opts.log.debug({ err }, 'HTTP request aborted by the client');
            return CLIENT_CLOSED;
          }
          opts.log.error({ err }, 'HTTP handler failed');
          return INTERNAL_ERROR;
        })
        .then(async (out) => {
          // What the handler did not read is read and dropped, never held; the answer goes out once the request is
          // whole, or uWS would close the connection under a client that reuses it.
          if (!body.destroyed) body.destroy();
          if (!aborted) {
            body.unpause(); // a socket left paused would be closed by uWS once answered
            if (!body.complete)
              await Promise.race([body.completed, new Promise((r) => setTimeout(r, DISCARD_WAIT_MS))]);
          }
          write(out);
        });
      return;
    }
    res.onData((chunk, isLast) => {
      if (aborted) return;
      if (size + chunk.byteLength > limits.maxHttpBodyBytes) {
        release();
        return write({ status: 413, body: { detail: 'Request body too large' } });
      }
      if (bodyBytesInFlight + chunk.byteLength > limits.maxHttpBodyBytesInFlight) {
        release();
        return write({
          status: 503,
          body: { detail: aipError('HTTP_BUSY').message },
          headers: { 'retry-after': '1' },
        });
      }
      size += chunk.byteLength;
      bodyBytesInFlight += chunk.byteLength;
      chunks.push(Buffer.from(chunk.slice(0)));
      if (!isLast) return;
      const body = Buffer.concat(chunks);
      void Promise.resolve()
        .then(() => opts.http.handle(request(head, body, goneSignal)))
        .catch((err: unknown) => {
          opts.log.error({ err }, 'HTTP handler failed');
          return INTERNAL_ERROR;
        })
        .then((out) => {
          release();
          write(out);
        });
    });
  });

  return listenExclusive(app, opts.host, opts.port).then((listenSocket) => {
    let listening: uWS.us_listen_socket | null = listenSocket;
    return {
      port: uWS.us_socket_local_port(listenSocket),
      stopListening: () => {
        if (listening) uWS.us_listen_socket_close(listening);
        listening = null;
      },
      closeAll: () => {
        if (listening) uWS.us_listen_socket_close(listening);
        listening = null;
        for (const conn of [...live]) conn.terminate();
        for (const end of [...streams]) end();
      },
      connections: () => live.values(),
    };
  });
}

/**
 * A request body as a Readable: uWS's reads are pushed in, and while the consumer is behind (push() returned
 * false) the request is paused, so the socket, not our memory, holds the rest.
 */
/** How long an answered request's unread body may take to arrive (and be dropped) before the answer goes anyway. */
const DISCARD_WAIT_MS = 10_000;

type StreamedBody = Readable & { complete: boolean; completed: Promise<void>; unpause(): void };

function streamBody(res: uWS.HttpResponse, gone: () => boolean): StreamedBody {
  let paused = false;
  let markComplete: () => void = () => undefined;
  const body = Object.assign(
    new Readable({
      highWaterMark: 256 * 1024,
      read: () => {
        if (paused && !gone()) {
          paused = false;
          res.resume();
        }
      },
    }),
    {
      complete: false,
      completed: new Promise<void>((r) => (markComplete = r)),
      unpause: () => {
        if (!paused) return;
        paused = false;
        res.resume();
      },
    },
  );
  res.onData((chunk, isLast) => {
    if (isLast) {
      body.complete = true;
      markComplete();
    }
    if (body.destroyed) return;
    if (!body.push(Buffer.from(chunk.slice(0))) && !isLast && !gone()) {
      paused = true;
      res.pause();
    }
    if (isLast) body.push(null);
  });
  return body;
}

/**
 * Sends a streamed response's head and hands the stream a sink over `res`. Returns what ends it from outside (an
 * abort: `res` is gone). `streams` holds the ender while it runs, so closing the server ends it too.
 *
 * Backpressure: `res.write` always takes the chunk; false means uWS now holds bytes the socket did not take, and
 * the stream must wait. Once `onWritable` is registered uWS no longer drains its own buffer on a writable event
 * (HttpContext.h: the handler is expected to write), so the handler runs the stream's `drain` inside a cork: the
 * uncork writes uWS's buffered bytes out even when the stream has nothing new, and re-arms the writable poll if
 * they do not all fit. An end while bytes are still held closes the socket instead (they could not be flushed in
 * time, and the stream's client resumes where it got to).
 */
function startStream(
  res: uWS.HttpResponse,
  out: HttpResponse,
  stream: HttpStream,
  streams: Set<() => void>,
): () => void {
  let open = true;
  let backedUp = false;
  /** `resAlive`: false after an abort, when `res` may not be touched. */
  const finish = (resAlive: boolean): void => {
    if (!open) return;
    open = false;
    streams.delete(endByServer);
    if (resAlive) {
      if (backedUp) res.close();
      else res.cork(() => res.end());
    }
    stream.close();
  };
  const endByServer = (): void => finish(true);
  streams.add(endByServer);
  res.onWritable(() => {
    if (!open) return true;
    backedUp = false;
    res.cork(() => stream.drain());
    return true;
  });
  res.cork(() => {
    res.writeStatus(statusLine(out.status));
    for (const [k, v] of Object.entries(out.headers ?? {})) res.writeHeader(k, v);
    stream.open({
      write: (chunk) => {
        if (!open) return false;
        let ok = false;
        res.cork(() => {
          ok = res.write(chunk);
        });
        if (!ok) backedUp = true;
        return ok;
      },
      end: () => finish(true),
      abort: () => {
        backedUp = true; // closes the socket instead of ending the body cleanly
        finish(true);
      },
    });
  });
  return () => finish(false);
}

/** uWS's ListenOptions value; its typings lack the (host, port, options, cb) form the native code takes. */
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1;
interface ListenWithOptions {
  listen(
    host: string,
    port: number,
    options: number,
    cb: (socket: uWS.us_listen_socket | false) => void,
  ): void;
}

/** Listens exclusively on `port`, or on a free port of our choosing for 0 (see listen.ts). Throws ListenError. */
async function listenExclusive(
  app: uWS.TemplatedApp,
  host: string,
  port: number,
): Promise<uWS.us_listen_socket> {
  const attempts = port === 0 ? EPHEMERAL_PORT_ATTEMPTS : 1;
  for (let i = 0; i < attempts; i++) {
    const p = port === 0 ? await freePort(host).catch(() => 0) : port;
    if (p === 0) break;
    const socket = await new Promise<uWS.us_listen_socket | false>((resolve) => {
      (app as unknown as ListenWithOptions).listen(host, p, LIBUS_LISTEN_EXCLUSIVE_PORT, resolve);
    });
    if (socket) return socket;
    if (port !== 0) throw new ListenError(await whyNotListening(host, port));
  }
  throw new ListenError(`cannot find a free port on ${host}`);
}

function readHead(req: uWS.HttpRequest): HttpRequestHead {
  const headers: Record<string, string> = {};
  req.forEach((k, v) => {
    headers[k] = v;
  });
  return { method: req.getMethod().toUpperCase(), path: req.getUrl(), query: req.getQuery() ?? '', headers };
}

function safely(fn: () => HttpResponse | null, opts: TransportOptions): HttpResponse | null {
  try {
    return fn();
  } catch (err) {
    opts.log.error({ err }, 'HTTP head handler failed');
    return INTERNAL_ERROR;
  }
}

/** The request a handler gets: its `signal` is made only if the handler reads it. */
function request(head: HttpRequestHead, body: Uint8Array, signal: () => AbortSignal): HttpRequest {
  return {
    ...head,
    body,
    get signal() {
      return signal();
    },
  };
}
