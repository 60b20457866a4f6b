/** A small SSE client over node:http for the tests: parses messages, can pause reading and disconnect. */
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { TEST_KEY } from '../helpers/aip-server.js';

export interface SseMessage {
  readonly id: number;
  readonly event: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed JSON, read loosely by the tests
  readonly data: any;
}

export class SseClient {
  readonly messages: SseMessage[] = [];
  /** Comment lines (`: keepalive`), without the colon. */
  readonly comments: string[] = [];
  status = 0;
  headers: IncomingMessage['headers'] = {};
  ended = false;
  private buf = '';
  private res: IncomingMessage | null = null;
  private waiters: (() => void)[] = [];

  private constructor(private readonly req: ClientRequest) {}

  /** Opens `path` with `Accept: text/event-stream`; resolves once the head arrived. */
  static open(port: number, path: string, lastEventId?: number): Promise<SseClient> {
    const headers: Record<string, string> = { 'x-api-key': TEST_KEY, accept: 'text/event-stream' };
    if (lastEventId !== undefined) headers['last-event-id'] = String(lastEventId);
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, headers });
      const c = new SseClient(req);
      req.on('response', (res) => {
        c.res = res;
        c.status = res.statusCode!;
        c.headers = res.headers;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => c.feed(chunk));
        res.on('close', () => c.finish());
        res.on('end', () => c.finish());
        res.on('error', () => c.finish());
        resolve(c);
      });
      req.on('error', (err) => {
        c.finish();
        reject(err);
      });
      req.end();
    });
  }

  get lastId(): number {
    return this.messages.length > 0 ? this.messages[this.messages.length - 1]!.id : 0;
  }

  ids(): number[] {
    return this.messages.map((m) => m.id);
  }

  /** Resolves once `pred()` holds; rejects if the stream ends first or after `ms`. */
  async until(pred: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (this.ended) throw new Error(`stream ended before ${what}; last id ${this.lastId}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last id ${this.lastId}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async whenEnded(ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('stream did not end');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  pause(): void {
    this.res?.pause();
  }

  resume(): void {
    this.res?.resume();
  }

  /** Drops the connection (a client going away mid-stream). */
  close(): void {
    this.req.destroy();
    this.finish();
  }

  private feed(chunk: string): void {
    this.buf += chunk;
    let cut: number;
    while ((cut = this.buf.indexOf('\n\n')) !== -1) {
      const block = this.buf.slice(0, cut);
      this.buf = this.buf.slice(cut + 2);
      let id: number | null = null;
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
        else if (line.startsWith('id: ')) id = Number(line.slice(4));
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (id !== null) this.messages.push({ id, event, data: JSON.parse(data.join('\n')) });
    }
    for (const w of this.waiters.splice(0)) w();
  }

  private finish(): void {
    this.ended = true;
    for (const w of this.waiters.splice(0)) w();
  }
}
