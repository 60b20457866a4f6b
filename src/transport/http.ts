/**
 * Transport-neutral HTTP: a request head, then (unless the head is answered at once) the body, and a response.
 * Bodies are JSON unless the response says otherwise with a content-type and a string or byte body. A response
 * with a `stream` (server-sent events, file downloads) sends its head, then whatever the stream writes, with
 * backpressure. A request whose route streams its body (uploads) gets it as a Readable that the transport fills
 * at the pace the handler reads it, so an upload of any size holds at most a socket buffer in memory.
 */
import type { Readable } from 'node:stream';

export interface HttpRequestHead {
  readonly method: string;
  readonly path: string;
  /** The raw query string, without `?`. */
  readonly query: string;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string>>;
}

export interface HttpRequest extends HttpRequestHead {
  readonly body: Uint8Array;
  /**
   * Aborted when the client goes away before the answer is sent, so that work done only for it can stop (absent
   * where the transport cannot tell).
   */
  readonly signal?: AbortSignal;
}

export interface HttpResponse {
  readonly status: number;
  /** JSON-encoded, unless `headers['content-type']` is set and the body is a string or bytes. Unused with `stream`. */
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  /** A streamed body (chunked): the transport sends the head, then drives the stream. */
  readonly stream?: HttpStream;
}

/** Where a streamed response writes; given to `HttpStream.open`. */
export interface HttpStreamSink {
  /**
   * Sends a chunk. The transport takes it whatever the answer; `false` means the socket is backed up: write no more
   * until `HttpStream.drain` is called. After the stream ended or was aborted it does nothing and returns false.
   */
  write(chunk: string | Uint8Array): boolean;
  /** Ends the response (idempotent); `HttpStream.close` follows. */
  end(): void;
  /** Breaks the response off (the socket is closed, so the client sees it incomplete); `HttpStream.close` follows. */
  abort(): void;
}

/**
 * A streamed response body, driven by the transport:
 * `open` once the head is out, `drain` each time the socket can take more after a `write` returned false, and
 * `close` exactly once when it is over (ended by the stream, aborted by the client, or the server shutting down),
 * after which the sink does nothing. A stream must release everything (timers, subscriptions) in `close`.
 */
export interface HttpStream {
  open(sink: HttpStreamSink): void;
  drain(): void;
  close(): void;
}

export interface HttpHandler {
  /** Called with the head before any body byte is read; a response here ends the request unread. */
  head(req: HttpRequestHead): HttpResponse | null;
  /** True when this request's body goes to `handle` as a stream (`body` is then empty), with no size limit. */
  streamsBody(req: HttpRequestHead): boolean;
  handle(req: HttpRequest, bodyStream?: Readable): HttpResponse | Promise<HttpResponse>;
  /**
   * Optional: called with every answer the transport is about to send for `req` (the handler's own, and the
   * transport's 413, 503 and 500), once; what it returns goes out (the place for a request id and access logging).
   */
  finish?(req: HttpRequestHead, res: HttpResponse): HttpResponse;
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  206: 'Partial Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  422: 'Unprocessable Entity',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? 'Unknown'}`;
}

/**
 * The bytes and content type a response goes out with. A body JSON cannot hold (a string over V8's limit of about
 * 512 MiB, nesting deeper than the stack) is a handler's failure: it answers 500 (the error goes to `onError`),
 * never an exception out of the transport's write, which nothing would catch.
 */
export function encodeHttpBody(
  res: HttpResponse,
  onError?: (err: unknown) => void,
): { status: number; contentType: string; body: string | Uint8Array } {
  const declared = res.headers?.['content-type'];
  if (declared !== undefined && (typeof res.body === 'string' || res.body instanceof Uint8Array)) {
    return { status: res.status, contentType: declared, body: res.body };
  }
  try {
    return {
      status: res.status,
      contentType: declared ?? 'application/json',
      body: JSON.stringify(res.body),
    };
  } catch (err) {
    onError?.(err);
    return { status: 500, contentType: 'application/json', body: JSON.stringify(INTERNAL_ERROR.body) };
  }
}

export const INTERNAL_ERROR: HttpResponse = { status: 500, body: { detail: 'Internal Server Error' } };
/** What a request whose client left mid-body is recorded as (never sent: nginx's 499, in the access log and metrics). */
export const CLIENT_CLOSED: HttpResponse = { status: 499, body: { detail: 'Client closed the request' } };
