/**
 * The client side of `MemoryTransport.inject()` and `injectStream()` (memory.ts): the request and response shapes,
 * the reader of a streamed response, and the encoding of bodies both ways.
 */
import type { HttpResponse, HttpStream } from './http.js';

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

export function toInjectResponse(res: HttpResponse): InjectResponse {
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

export function encodeBody(body: unknown): Uint8Array {
  if (body === undefined) return new Uint8Array(0);
  if (body instanceof Uint8Array) return body;
  return new TextEncoder().encode(typeof body === 'string' ? body : JSON.stringify(body));
}
