/**
 * The in-process session store: records and event logs in Maps. For tests and benchmarks.
 *
 * Values. What comes in is deep-copied (structuredClone) once: a created record, the changed fields of an update.
 * A stored record is never changed in place: an update stores a new object that shares its unchanged fields with
 * the one before, so it copies only what changed, whatever the size of the rest (a task's plan request), and `get`
 * and `list` hand out copies. An event's data is kept as its JSON text, as the SQL stores keep it, and each event
 * handed out (by the write that logs it, `events` and `allEvents`) parses its own copy when its `data` is first
 * read (`decodeEvent`). A deep copy and a deep freeze of every event cost more than the SQLite store's whole
 * commit (`aip-json-memstore` did fewer round trips per CPU-second than `aip-json`); most events are never read.
 */
import { approxBytes } from './approx-bytes.js';
import type { SessionRecord, SessionStatus } from './session-model.js';
import { decodeEvent, encodeEvent, type EncodedEvent } from './sql-schema.js';
import {
  afterCursor,
  cursorOf,
  matchesFilter,
  newestFirst,
  parseCursor,
  type NewEvent,
  type Page,
  type PageRequest,
  type SessionChanges,
  type SessionCount,
  type EventPage,
  type SessionEvent,
  type SessionFilter,
  type SessionStore,
  type UpdateResult,
} from './session-store.js';

export interface MemoryStoreOptions {
  /** Events kept per session; the oldest go first. */
  readonly maxEventsPerSession: number;
  /**
   * Bytes (by a content estimate) of ended sessions kept; past it the oldest ended sessions are forgotten, so a
   * memory store never grows with finished work (large task results, screenshots). Default unbounded.
   */
  readonly maxEndedBytes?: number;
}

const ENDED = new Set(['completed', 'failed', 'cancelled']);

/** An event as kept: its data as JSON text. */
interface StoredEvent extends EncodedEvent {
  readonly id: number;
}

const handOut = (e: StoredEvent): SessionEvent => decodeEvent(e.id, e);

export class MemorySessionStore implements SessionStore {
  private readonly records = new Map<string, SessionRecord>();
  private readonly logs = new Map<string, StoredEvent[]>();
  /** Every event in id order (bounded through the per-session logs it mirrors). */
  private all: StoredEvent[] = [];
  private lastId = 0;
  /** Events in all per-session logs. */
  private logged = 0;
  /** Events trimmed from their session's log but still in `all` until it is compacted. */
  private readonly dropped = new WeakSet<StoredEvent>();

  /** Ended sessions in the order they ended, with their estimated size. */
  private readonly ended = new Map<string, number>();
  private endedBytes = 0;

  constructor(private readonly opts: MemoryStoreOptions = { maxEventsPerSession: 10_000 }) {}

  /** Estimated bytes of the ended sessions kept. */
  get endedSessionBytes(): number {
    return this.endedBytes;
  }

  /** Notes a record that ended (or left ended), and forgets the oldest ended ones past the budget. */
  private account(rec: SessionRecord): void {
    const old = this.ended.get(rec.id);
    if (old !== undefined) {
      this.ended.delete(rec.id);
      this.endedBytes -= old;
    }
    if (!ENDED.has(rec.status) || this.opts.maxEndedBytes === undefined) return;
    const size = approxBytes(rec);
    this.ended.set(rec.id, size);
    this.endedBytes += size;
    for (const [id, bytes] of this.ended) {
      if (this.endedBytes <= this.opts.maxEndedBytes) break;
      this.ended.delete(id);
      this.endedBytes -= bytes;
      this.records.delete(id);
      this.forgetLog(id);
    }
  }

  open(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  create(record: SessionRecord, event: NewEvent): Promise<SessionEvent | null> {
    if (this.records.has(record.id)) return Promise.resolve(null);
    // Both copied before either is stored: data that cannot be copied leaves nothing behind.
    const rec = structuredClone(record);
    const stored = this.append([event])[0]!;
    this.records.set(record.id, rec);
    this.account(record);
    return Promise.resolve(stored);
  }

  get(id: string): Promise<SessionRecord | null> {
    const r = this.records.get(id);
    return Promise.resolve(r ? structuredClone(r) : null);
  }

  update(
    id: string,
    version: number,
    changes: SessionChanges,
    event: NewEvent,
  ): Promise<UpdateResult | null> {
    const cur = this.records.get(id);
    if (!cur || cur.version !== version) return Promise.resolve(null);
    // A new object: the unchanged fields are shared with `cur` (stored values are never changed in place), and only
    // the changes are copied. Absent keys stay as they are, and so do keys given as undefined (as in the SQL stores).
    // Object.assign, not `{ ...cur, version }`: on Node 20 adding a property to a spread clone costs about 1 µs.
    const next = Object.assign({}, cur, { version: version + 1 }) as unknown as Record<string, unknown>;
    for (const k of Object.keys(changes)) {
      const v = (changes as Record<string, unknown>)[k];
      if (v !== undefined) next[k] = typeof v === 'object' && v !== null ? structuredClone(v) : v;
    }
    const rec = next as unknown as SessionRecord;
    const result: UpdateResult = { version: version + 1, event: this.append([event])[0]! };
    this.records.set(id, rec);
    this.account(rec);
    return Promise.resolve(result);
  }

  delete(id: string, event: NewEvent): Promise<SessionEvent | null> {
    const cur = this.records.get(id);
    if (!cur || !this.records.delete(id)) return Promise.resolve(null);
    this.account({ ...cur, status: 'active' });
    return Promise.resolve(this.append([event])[0]!);
  }

  list(filter: SessionFilter, page: PageRequest): Promise<Page> {
    const cursor = page.cursor ? parseCursor(page.cursor) : null;
    const matching = [...this.records.values()]
      .filter((r) => matchesFilter(r, filter) && (!cursor || afterCursor(r, cursor)))
      .sort(newestFirst);
    const items = matching.slice(0, page.limit).map((r) => structuredClone(r));
    const next = matching.length > page.limit && items.length > 0 ? cursorOf(items[items.length - 1]!) : null;
    return Promise.resolve({ items, next });
  }

  count(statuses: readonly SessionStatus[]): Promise<SessionCount[]> {
    const counts = new Map<string, { -readonly [K in keyof SessionCount]: SessionCount[K] }>();
    for (const r of this.records.values()) {
      if (!statuses.includes(r.status)) continue;
      const key = JSON.stringify([r.session_type, r.status]);
      const c = counts.get(key);
      if (c) c.count++;
      else counts.set(key, { session_type: r.session_type, status: r.status, count: 1 });
    }
    return Promise.resolve([...counts.values()]);
  }

  appendEvents(events: readonly NewEvent[]): Promise<SessionEvent[]> {
    return Promise.resolve(this.append(events));
  }

  events(sessionId: string, after: number, limit: number): Promise<SessionEvent[]> {
    const out: SessionEvent[] = [];
    for (const e of this.logs.get(sessionId) ?? []) {
      if (out.length >= limit) break;
      if (e.id > after) out.push(handOut(e));
    }
    return Promise.resolve(out);
  }

  eventPage(sessionId: string | null, after: number, limit: number, maxChars: number): Promise<EventPage> {
    const events: SessionEvent[] = [];
    let chars = 0;
    for (const e of sessionId === null ? this.all : (this.logs.get(sessionId) ?? [])) {
      if (events.length >= limit) break;
      if (e.id <= after || (sessionId === null && this.dropped.has(e))) continue;
      chars += e.data.length;
      if (events.length > 0 && chars > maxChars) return Promise.resolve({ events, cut: true });
      events.push(handOut(e));
    }
    return Promise.resolve({ events, cut: false });
  }

  allEvents(after: number, limit: number): Promise<SessionEvent[]> {
    const out: SessionEvent[] = [];
    for (const e of this.all) {
      if (out.length >= limit) break;
      if (e.id <= after || this.dropped.has(e)) continue;
      out.push(handOut(e));
    }
    return Promise.resolve(out);
  }

  /** Drops a forgotten session's log. */
  private forgetLog(id: string): void {
    const log = this.logs.get(id);
    if (!log) return;
    for (const e of log) this.dropped.add(e);
    this.logged -= log.length;
    this.logs.delete(id);
  }

  /** Stores events with fresh ids, their data as JSON text; returns them as handed out. */
  private append(events: readonly NewEvent[]): SessionEvent[] {
    const out: SessionEvent[] = [];
    for (const e of events) {
      const stored: StoredEvent = Object.assign(encodeEvent(e), { id: ++this.lastId });
      let log = this.logs.get(e.session_id);
      if (!log) this.logs.set(e.session_id, (log = []));
      log.push(stored);
      this.logged++;
      if (log.length > this.opts.maxEventsPerSession) {
        this.dropped.add(log.shift()!);
        this.logged--;
      }
      this.all.push(stored);
      out.push(handOut(stored));
    }
    // The global list keeps only events still in some session's log (amortised: when half of it is trimmed).
    if (this.all.length > 2 * this.logged + 1024) {
      const kept = new Set<StoredEvent>();
      for (const log of this.logs.values()) for (const e of log) kept.add(e);
      this.all = this.all.filter((e) => kept.has(e));
    }
    return out;
  }
}
