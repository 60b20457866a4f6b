/**
 * The uWebSockets.js adapter: the only file that touches uWS.
 *
 * - `/ws?token=KEY`: the token is checked in constant time before the upgrade (403 otherwise) and never logged;
 *   the subprotocol `aip.msgpack.v1` selects the msgpack codec.
 * - Every send goes through a lossless, backpressure-aware path (perf-baselines.md §8): frames go straight to uWS
 *   while its buffer is under the high-water mark, otherwise into a per-connection queue flushed on `drain`.
 *   A `send()` that returns DROPPED is re-queued, never lost. A connection whose queued bytes stay over its budget
 *   past the slow-consumer timeout is closed with CloseCode.SLOW_CONSUMER.
 * - HTTP requests are read fully (bounded) and handed to a transport-agnostic handler.
 */
import { randomUUID, timingSafeEqual, createHash } from 'node:crypto';
import uWS from 'uWebSockets.js';
import { CloseCode, encodeServerMessage, negotiateCodec, type ServerMessageInput, type WireCodec } from '../../protocol/index.js';
import type { Logger } from '../logger.js';
import type { Connection } from './connection.js';

export interface SocketHandler {
  message(data: ArrayBuffer, isBinary: boolean): void;
  closed(code: number): void;
}

export interface HttpRequestData {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  body: Buffer;
}
export interface HttpResponseData {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface UwsTransportOptions {
  host: string;
  port: number;
  apiKey: string;
  maxPayloadBytes: number;
  idleTimeoutSec: number;
  outboundBudgetBytes: number;
  slowConsumerTimeoutMs: number;
  log: Logger;
  onConnection(conn: Connection): SocketHandler;
  onHttp(req: HttpRequestData): HttpResponseData | Promise<HttpResponseData>;
}

export interface UwsTransport {
  readonly port: number;
  /** Stops accepting connections (the listen socket closes; open sockets stay). */
  stopListening(): void;
  /** Force-closes everything. */
  closeAll(): void;
  connections(): Iterable<Connection>;
}

/** uWS keeps at most this much in its own buffer; the rest waits in our queue. */
const HIGH_WATER_MARK = 1024 * 1024;
const MAX_HTTP_BODY = 4 * 1024 * 1024;

interface UserData {
  codec: WireCodec;
  remoteAddress: string;
  conn?: UwsConnection;
}

class UwsConnection implements Connection {
  readonly id = randomUUID();
  closed = false;
  handler: SocketHandler | null = null;
  private readonly queue: { data: string | Uint8Array; isBinary: boolean }[] = [];
  private queuedBytes = 0;
  private overBudgetTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ws: uWS.WebSocket<UserData>,
    readonly codec: WireCodec,
    readonly remoteAddress: string,
    private readonly opts: UwsTransportOptions,
  ) {}

  send(msg: ServerMessageInput): boolean {
    if (this.closed) return false;
    const data = encodeServerMessage(this.codec, msg);
    return this.sendRaw(data, this.codec.binary);
  }

  sendRaw(data: string | Uint8Array, isBinary: boolean): boolean {
    if (this.closed) return false;
    if (this.queue.length > 0 || this.ws.getBufferedAmount() > HIGH_WATER_MARK) {
      this.enqueue(typeof data === 'string' ? data : data.slice(), isBinary, false);
      return true;
    }
    let r = 1;
    this.ws.cork(() => {
      r = this.ws.send(data, isBinary);
    });
    if (r === 2) this.enqueue(typeof data === 'string' ? data : data.slice(), isBinary, true);
    else if (r === 0) this.checkBudget();
    return true;
  }

  bufferedBytes(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount() + this.queuedBytes;
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.markClosed();
    this.ws.end(code, reason);
  }

  /** Closes at once, without a close handshake. */
  terminate(): void {
    if (this.closed) return;
    this.markClosed();
    this.ws.close();
  }

  /** Called from uWS `drain`: moves queued frames to uWS while it is under the high-water mark. */
  flush(): void {
    while (!this.closed && this.queue.length > 0 && this.ws.getBufferedAmount() <= HIGH_WATER_MARK) {
      const item = this.queue.shift()!;
      const r = this.ws.send(item.data, item.isBinary);
      if (r === 2) {
        this.queue.unshift(item);
        break;
      }
      this.queuedBytes -= byteLength(item.data);
    }
    this.checkBudget();
  }

  markClosed(): void {
    this.closed = true;
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

  /** Over budget: start the slow-consumer clock; far over (4×): close at once. Back under: stop the clock. */
  private checkBudget(): void {
    const budget = this.opts.outboundBudgetBytes;
    const pending = this.bufferedBytes();
    if (pending > budget * 4) return this.slowConsumer();
    if (pending > budget) {
      if (!this.overBudgetTimer) {
        this.overBudgetTimer = setTimeout(() => this.slowConsumer(), this.opts.slowConsumerTimeoutMs);
        this.overBudgetTimer.unref();
      }
    } else if (this.overBudgetTimer) {
      clearTimeout(this.overBudgetTimer);
      this.overBudgetTimer = null;
    }
  }

  private slowConsumer(): void {
    if (this.closed) return;
    this.opts.log.warn({ conn: this.id, queued: this.queuedBytes }, 'closing slow consumer');
    const handler = this.handler;
    this.close(CloseCode.SLOW_CONSUMER, 'slow consumer: outbound buffer over budget');
    // uWS will also call `close`; the handler ignores the second notification.
    handler?.closed(CloseCode.SLOW_CONSUMER);
  }
}

function byteLength(data: string | Uint8Array): number {
  return typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
}

/** Constant-time comparison of the presented token with the key (hash first so lengths never leak). */
function tokenMatches(presented: string | null, keyDigest: Buffer): boolean {
  if (presented === null) return false;
  return timingSafeEqual(createHash('sha256').update(presented, 'utf8').digest(), keyDigest);
}

export function startUwsTransport(opts: UwsTransportOptions): Promise<UwsTransport> {
  const keyDigest = createHash('sha256').update(opts.apiKey, 'utf8').digest();
  const live = new Set<UwsConnection>();
  const app = uWS.App();

  app.ws<UserData>('/ws', {
    compression: uWS.DISABLED,
    maxPayloadLength: opts.maxPayloadBytes,
    idleTimeout: opts.idleTimeoutSec,
    sendPingsAutomatically: opts.idleTimeoutSec > 0,
    maxBackpressure: opts.maxPayloadBytes + HIGH_WATER_MARK * 2,
    closeOnBackpressureLimit: 0,
    upgrade: (res, req, context) => {
      const token = new URLSearchParams(req.getQuery() ?? '').get('token');
      const key = req.getHeader('sec-websocket-key');
      const offer = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      if (!tokenMatches(token, keyDigest)) {
        res.cork(() => {
          res.writeStatus('403 Forbidden').writeHeader('content-type', 'text/plain').end('Invalid or missing token');
        });
        return;
      }
      const codec = negotiateCodec(offer);
      const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString();
      res.upgrade<UserData>({ codec, remoteAddress }, key, codec.subprotocol ?? '', extensions, context);
    },
    open: (ws) => {
      const ud = ws.getUserData();
      const conn = new UwsConnection(ws, ud.codec, ud.remoteAddress, opts);
      ud.conn = conn;
      live.add(conn);
      conn.handler = opts.onConnection(conn);
    },
    message: (ws, message, isBinary) => {
      ws.getUserData().conn?.handler?.message(message, isBinary);
    },
    drain: (ws) => {
      ws.getUserData().conn?.flush();
    },
    close: (ws, code) => {
      const conn = ws.getUserData().conn;
      if (!conn) return;
      live.delete(conn);
      conn.markClosed();
      conn.handler?.closed(code);
    },
  });

  app.any('/*', (res, req) => {
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const headers: Record<string, string> = {};
    req.forEach((k, v) => {
      headers[k] = v;
    });
    const request: Omit<HttpRequestData, 'body'> = {
      method: req.getMethod().toUpperCase(),
      path: req.getUrl(),
      query: req.getQuery() ?? '',
      headers,
    };
    const chunks: Buffer[] = [];
    let size = 0;
    res.onData((chunk, isLast) => {
      if (aborted) return;
      size += chunk.byteLength;
      if (size > MAX_HTTP_BODY) {
        aborted = true;
        res.cork(() => res.writeStatus('413 Payload Too Large').end(JSON.stringify({ detail: 'Request body too large' })));
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0)));
      if (!isLast) return;
      void Promise.resolve()
        .then(() => opts.onHttp({ ...request, body: Buffer.concat(chunks) }))
        .catch((err: unknown) => {
          opts.log.error({ err }, 'HTTP handler failed');
          return { status: 500, body: { detail: 'Internal Server Error' } } satisfies HttpResponseData;
        })
        .then((out: HttpResponseData) => {
          if (aborted) return;
          res.cork(() => {
            res.writeStatus(statusLine(out.status));
            res.writeHeader('content-type', 'application/json');
            for (const [k, v] of Object.entries(out.headers ?? {})) res.writeHeader(k, v);
            res.end(JSON.stringify(out.body));
          });
        });
    });
  });

  return new Promise((resolve, reject) => {
    app.listen(opts.host, opts.port, (listenSocket) => {
      if (!listenSocket) return reject(new Error(`cannot listen on ${opts.host}:${opts.port}`));
      const port = uWS.us_socket_local_port(listenSocket);
      let listening: uWS.us_listen_socket | null = listenSocket;
      resolve({
        port,
        stopListening: () => {
          if (listening) uWS.us_listen_socket_close(listening);
          listening = null;
        },
        closeAll: () => {
          if (listening) uWS.us_listen_socket_close(listening);
          listening = null;
          for (const conn of [...live]) conn.terminate();
        },
        connections: () => live.values(),
      });
    });
  });
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  422: 'Unprocessable Entity',
  500: 'Internal Server Error',
};
function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? 'Unknown'}`;
}
