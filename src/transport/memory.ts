/**
 * The in-memory transport: the server's twin of the uWS adapter with no sockets, in the spirit of `ws`'s duplex
 * pairs and fastify's `inject()`. `connect()` gives the client end of a connected pair; `inject()` runs one HTTP
 * request through the same handler a real server uses, and `injectStream()` one whose response is streamed (SSE),
 * with a reader that can pause (backpressure) and abort. Frames cross in a microtask, as bytes, so ordering and
 * re-entrancy match a real socket; text frames reach the server as bytes, as uWS delivers them.
 *
 * The connection's two ends are in memory-connection.ts; the client side of `inject()` and `injectStream()` in
 * memory-inject.ts.
 */
import { Readable } from 'node:stream';
import type { Connection } from './connection.js';
import { INTERNAL_ERROR, type HttpRequestHead, type HttpResponse } from './http.js';
import { MemoryClientSocket, MemoryConnection } from './memory-connection.js';
import {
  encodeBody,
  InjectedStream,
  toInjectResponse,
  type InjectRequest,
  type InjectResponse,
} from './memory-inject.js';
import type { Transport, TransportOptions } from './transport.js';

export { MemoryClientSocket, type MemoryFrame } from './memory-connection.js';
export { InjectedStream, type InjectRequest, type InjectResponse } from './memory-inject.js';

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
