/**
 * A live SSE stream of session events (`id: N`, `event: TYPE`, `data: JSON`), resumable with `Last-Event-ID`.
 *
 * No gap, no repeat. The stream subscribes to the in-process feed FIRST and buffers what it hears, then pages the
 * store's log after the last id the client has (the store has every event committed before the subscription; the
 * feed has every one committed after), emits it, then emits the buffer skipping ids at or below the last one
 * emitted, and from then on passes feed events through with the same rule. Ids only grow, so a client that
 * reconnects with the last id it saw gets exactly what it missed. The feed carries this node's commits in commit
 * order; events another node commits to a shared PostgreSQL reach this stream only on a replay.
 *
 * Bounded memory. Writes go to the transport until it reports backpressure; then live chunks queue here, the
 * store replay waits for the socket to drain before each event (it goes at the client's pace), and when what waits
 * (the queue plus the feed buffer of a replay) passes `maxBufferedBytes` the stream is closed: the slow client
 * reconnects with Last-Event-ID and loses nothing.
 * A comment line (`: keepalive`) goes out every `heartbeatMs` so proxies and clients see the stream alive.
 */
import type { Logger } from '../../logger.js';
import type { EventPage, SessionEvent } from '../../state/session-store.js';
import type { HttpResponse, HttpStream, HttpStreamSink } from '../../transport/http.js';

/** Time between keepalive comments. */
export const SSE_HEARTBEAT_MS = 15_000;
/** Bytes a stream may hold for a slow client before it is closed. */
export const SSE_MAX_BUFFERED_BYTES = 1024 * 1024;
/** Events read from the store per replay page. */
export const SSE_REPLAY_PAGE = 500;

export interface SseOptions {
  readonly heartbeatMs: number;
  readonly maxBufferedBytes: number;
  readonly replayPage: number;
}

/**
 * The knobs every new stream reads (at request time): the named defaults above. Tests that run a server in their
 * own process may change them (a short heartbeat, a large or small budget) and must put them back.
 */
export const sseSettings: { -readonly [K in keyof SseOptions]: SseOptions[K] } = {
  heartbeatMs: SSE_HEARTBEAT_MS,
  maxBufferedBytes: SSE_MAX_BUFFERED_BYTES,
  replayPage: SSE_REPLAY_PAGE,
};

/** Where a stream's events come from. */
export interface SseSource {
  /** Subscribes to committed events as they happen (in commit order); returns the unsubscribe function. */
  subscribe(listener: (e: SessionEvent) => void): () => void;
  /** Logged events with id > `after`, oldest first: at most `limit`, fewer if the page was cut at its size budget. */
  page(after: number, limit: number): Promise<EventPage>;
  /** Whether a live event belongs to this stream. */
  matches(e: SessionEvent): boolean;
}

/** Frames of live events: every stream hears the same event object from the feed, and encodes it once. */
const frames = new WeakMap<SessionEvent, string>();

/** One event as an SSE message. */
export function sseFrame(e: SessionEvent): string {
  let frame = frames.get(e);
  if (frame === undefined) {
    const body = { id: e.id, session_id: e.session_id, type: e.type, at: e.at, data: e.data };
    frame = `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(body)}\n\n`;
    frames.set(e, frame);
  }
  return frame;
}

export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
};

export function sseResponse(stream: HttpStream): HttpResponse {
  return { status: 200, body: null, headers: SSE_HEADERS, stream };
}

interface Pending {
  readonly id: number;
  readonly frame: string;
  readonly bytes: number;
}

export class SseStream implements HttpStream {
  private sink: HttpStreamSink | null = null;
  private closed = false;
  private lastId: number;
  private replaying = true;
  /** Feed events heard during the replay. */
  private live: Pending[] = [];
  private liveBytes = 0;
  /** Chunks waiting for the socket to drain. */
  private queue: string[] = [];
  private queuedBytes = 0;
  private backedUp = false;
  private unsubscribe: () => void = () => undefined;
  private timer: ReturnType<typeof setInterval> | null = null;
  private drainWaiters: (() => void)[] = [];

  constructor(
    private readonly source: SseSource,
    after: number,
    private readonly opts: SseOptions,
    private readonly log: Logger,
  ) {
    this.lastId = after;
  }

  /** The last event id sent (or the one the client resumed from). */
  get lastEventId(): number {
    return this.lastId;
  }

  /** Bytes held for the client: the queue plus the feed buffer of a replay. */
  get bufferedBytes(): number {
    return this.queuedBytes + this.liveBytes;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  open(sink: HttpStreamSink): void {
    this.sink = sink;
    this.unsubscribe = this.source.subscribe((e) => this.onLive(e));
    this.send(': connected\n\n');
    this.timer = setInterval(() => this.heartbeat(), this.opts.heartbeatMs);
    this.timer.unref();
    this.replay().catch((err: unknown) => {
      if (this.closed) return;
      this.log.warn({ err }, 'SSE replay failed; closing the stream (the client resumes with Last-Event-ID)');
      this.end();
    });
  }

  drain(): void {
    this.backedUp = false;
    while (this.queue.length > 0 && !this.backedUp && !this.closed) {
      const chunk = this.queue.shift()!;
      this.queuedBytes -= Buffer.byteLength(chunk);
      if (!this.sink!.write(chunk)) this.backedUp = true;
    }
    if (!this.backedUp) this.wake();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.live = [];
    this.queue = [];
    this.liveBytes = this.queuedBytes = 0;
    this.wake();
  }

  /** Ends the response; the transport then calls `close`. */
  private end(): void {
    if (this.sink) this.sink.end();
    else this.close();
  }

  private async replay(): Promise<void> {
    for (;;) {
      const { events: page, cut } = await this.source.page(this.lastId, this.opts.replayPage);
      for (const e of page) {
        // The replay goes at the client's pace: at most one event waits here, whatever the page size.
        await this.writable();
        if (this.closed) return;
        this.emit(e.id, sseFrame(e));
      }
      if (this.closed) return;
      if (page.length < this.opts.replayPage && !cut) break;
    }
    // No await from here to the end: no feed event can come between the buffer and the pass-through.
    const heard = this.live;
    this.live = [];
    this.liveBytes = 0;
    this.replaying = false;
    for (const p of heard) this.emit(p.id, p.frame);
  }

  private onLive(e: SessionEvent): void {
    if (this.closed || !this.source.matches(e)) return;
    if (!this.replaying) {
      if (e.id <= this.lastId) {
        if (e.id < this.lastId)
          this.log.warn({ id: e.id, last: this.lastId }, 'SSE feed event out of order; skipped');
        return;
      }
      this.emit(e.id, sseFrame(e));
      return;
    }
    const frame = sseFrame(e);
    const bytes = Buffer.byteLength(frame);
    this.live.push({ id: e.id, frame, bytes });
    this.liveBytes += bytes;
    this.checkBudget();
  }

  private emit(id: number, frame: string): void {
    if (id <= this.lastId) return;
    this.lastId = id;
    this.send(frame);
  }

  private send(chunk: string): void {
    if (this.closed || !this.sink) return;
    if (this.backedUp || this.queue.length > 0) {
      this.queue.push(chunk);
      this.queuedBytes += Buffer.byteLength(chunk);
      this.checkBudget();
      return;
    }
    if (!this.sink.write(chunk)) this.backedUp = true;
  }

  private checkBudget(): void {
    if (this.bufferedBytes <= this.opts.maxBufferedBytes) return;
    this.log.info(
      { buffered: this.bufferedBytes, last_event_id: this.lastId },
      'SSE client too slow: closing the stream (it resumes with Last-Event-ID)',
    );
    this.end();
  }

  private heartbeat(): void {
    if (this.closed || this.backedUp || this.queue.length > 0) return;
    if (!this.sink!.write(': keepalive\n\n')) this.backedUp = true;
  }

  /** Resolves when the socket can take more (or the stream closed). */
  private writable(): Promise<void> {
    if (this.closed || (!this.backedUp && this.queue.length === 0)) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private wake(): void {
    for (const w of this.drainWaiters.splice(0)) w();
  }
}
