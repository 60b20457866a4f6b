/**
 * HTTP on the uWebSockets.js adapter (uws.ts): the head goes to the handler first, so a request can be refused
 * before its body is read; then the body is read, bounded (or streamed, for a handler that asks for it), and
 * handed over. Streamed answers go out through uws-http-streams.ts.
 */
import type uWS from 'uWebSockets.js';
import { aipError } from '../../protocol/index.js';
import {
  encodeHttpBody,
  CLIENT_CLOSED,
  INTERNAL_ERROR,
  statusLine,
  type HttpRequest,
  type HttpRequestHead,
  type HttpResponse,
} from './http.js';
import type { TransportOptions } from './transport.js';
import { startStream, streamBody } from './uws-http-streams.js';

/** How long an answered request's unread body may take to arrive (and be dropped) before the answer goes anyway. */
const DISCARD_WAIT_MS = 10_000;

/**
 * Serves every HTTP request to `app` (the paths not upgraded to a WebSocket). `streams` holds what ends each
 * streamed response under way, so closing the server ends them all.
 */
export function serveHttp(app: uWS.TemplatedApp, opts: TransportOptions, streams: Set<() => void>): void {
  /** HTTP body bytes read and not yet answered, across all connections (bounded by maxHttpBodyBytesInFlight). */
  let bodyBytesInFlight = 0;
  const { limits } = opts;

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
}

export function readHead(req: uWS.HttpRequest): HttpRequestHead {
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
