/**
 * A SessionStore that announces how long each write took (`store.write` lifecycle events, which the metrics turn
 * into a latency histogram). Reads pass straight through. Wrapping the interface keeps the stores themselves free
 * of metrics, and works for every implementation alike.
 */
import type { EventSink } from '../state/events.js';
import type {
  NewEvent,
  Page,
  PageRequest,
  SessionChanges,
  SessionCount,
  EventPage,
  SessionEvent,
  SessionFilter,
  SessionStore,
  UpdateResult,
} from '../state/session-store.js';
import type { SessionRecord, SessionStatus } from '../state/session-model.js';

export class TimedSessionStore implements SessionStore {
  constructor(
    private readonly inner: SessionStore,
    private readonly sink: EventSink,
  ) {}

  open(): Promise<void> {
    return this.inner.open();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  create(record: SessionRecord, event: NewEvent): Promise<SessionEvent | null> {
    return this.timed('create', this.start(), this.inner.create(record, event));
  }

  get(id: string): Promise<SessionRecord | null> {
    return this.inner.get(id);
  }

  update(
    id: string,
    version: number,
    changes: SessionChanges,
    event: NewEvent,
  ): Promise<UpdateResult | null> {
    return this.timed('update', this.start(), this.inner.update(id, version, changes, event));
  }

  delete(id: string, event: NewEvent): Promise<SessionEvent | null> {
    return this.timed('delete', this.start(), this.inner.delete(id, event));
  }

  list(filter: SessionFilter, page: PageRequest): Promise<Page> {
    return this.inner.list(filter, page);
  }

  count(statuses: readonly SessionStatus[]): Promise<SessionCount[]> {
    return this.inner.count(statuses);
  }

  appendEvents(events: readonly NewEvent[]): Promise<SessionEvent[]> {
    return this.timed('append_events', this.start(), this.inner.appendEvents(events));
  }

  events(sessionId: string, after: number, limit: number): Promise<SessionEvent[]> {
    return this.inner.events(sessionId, after, limit);
  }

  allEvents(after: number, limit: number): Promise<SessionEvent[]> {
    return this.inner.allEvents(after, limit);
  }

  eventPage(sessionId: string | null, after: number, limit: number, maxChars: number): Promise<EventPage> {
    return this.inner.eventPage(sessionId, after, limit, maxChars);
  }

  /** When a write starts, or NaN when nobody listens for `store.write` (the write is then not wrapped). */
  private start(): number {
    return this.sink.wants('store.write') ? performance.now() : NaN;
  }

  /**
   * `write`, started at `start`, announced when it settles. Every write of the hot path comes here, so it costs
   * one `then` and its two handlers when someone listens, and nothing otherwise.
   */
  private timed<T>(op: string, start: number, write: Promise<T>): Promise<T> {
    if (Number.isNaN(start)) return write;
    const sink = this.sink;
    return write.then(
      (v) => {
        sink.emit('store.write', { op, ms: performance.now() - start, ok: true });
        return v;
      },
      (err: unknown) => {
        sink.emit('store.write', { op, ms: performance.now() - start, ok: false });
        throw err;
      },
    );
  }
}
