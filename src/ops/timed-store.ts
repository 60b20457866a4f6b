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
  SessionEvent,
  SessionFilter,
  SessionStore,
  UpdateResult,
} from '../state/session-store.js';
import type { SessionRecord } from '../state/session-model.js';

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
    return this.timed('create', () => this.inner.create(record, event));
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
    return this.timed('update', () => this.inner.update(id, version, changes, event));
  }

  delete(id: string, event: NewEvent): Promise<SessionEvent | null> {
    return this.timed('delete', () => this.inner.delete(id, event));
  }

  list(filter: SessionFilter, page: PageRequest): Promise<Page> {
    return this.inner.list(filter, page);
  }

  appendEvents(events: readonly NewEvent[]): Promise<SessionEvent[]> {
    return this.timed('append_events', () => this.inner.appendEvents(events));
  }

  events(sessionId: string, after: number, limit: number): Promise<SessionEvent[]> {
    return this.inner.events(sessionId, after, limit);
  }

  allEvents(after: number, limit: number): Promise<SessionEvent[]> {
    return this.inner.allEvents(after, limit);
  }

  private timed<T>(op: string, write: () => Promise<T>): Promise<T> {
    if (!this.sink.wants('store.write')) return write();
    const start = performance.now();
    const done = (ok: boolean): void =>
      this.sink.emit('store.write', { op, ms: performance.now() - start, ok });
    return write().then(
      (v) => {
        done(true);
        return v;
      },
      (err: unknown) => {
        done(false);
        throw err;
      },
    );
  }
}
