/**
 * The index of the SQLite event log, kept one session at a time (see "Event logs" in sqlite-session-store.ts).
 *
 * `session_events` is keyed by id alone, so a commit appends its events at the end of the table. Each session's log
 * is found through `session_log_index` (session_id, id), and `session_logs` counts the indexed events of each log
 * so that trimming deletes exactly the surplus. What is not indexed yet is held here, per session: the ids of its
 * committed, unindexed events.
 *
 * - A session's events are indexed, counted and (over `maxEvents`) trimmed in the commit that brings its unindexed
 *   events to `batch` (64): one multi-row insert that writes the few index pages of that one log. Under load the
 *   sessions reach it at different commits, so the indexing is spread over the commits, instead of one run over
 *   the whole tail (which took 4-6 ms on the event loop, several times a second, and set the p99 of a round trip).
 * - A session with fewer events is indexed in the commit that takes the log `lag` events past its oldest unindexed
 *   one, each at its own moment (`pending` is in the order of the sessions' oldest unindexed events, since ids only
 *   grow: the commit looks only at the front). A read of one session's log indexes that session first (`flushOne`);
 *   a read of all events, and close, index every session (`flush`).
 * - The mark (`session_log_mark.indexed`): every event up to it is indexed. Events after it may be indexed or not.
 *   It moves, in the same transactions, to just before the oldest unindexed event, once that is `markEvery` events
 *   past it. So the tail a crash leaves is at most about `lag + markEvery` events, and so is what is held here.
 * - One process per database file (as the server's data directory has): what is unindexed is known only to the
 *   process that wrote it.
 * - `recover` indexes that tail from the file (open, and after a transaction rolled back, which also rolls back
 *   what this class had done in it): it takes out of the index, and out of the counts, what was indexed after the
 *   mark, and then indexes, counts and trims every event after the mark in (session_id, id) order.
 *
 * Every method that writes runs inside the caller's write transaction.
 */
import type Database from 'better-sqlite3';
import { MultiRowInsert } from './sqlite-multi-insert.js';

export interface LogIndexLimits {
  /** A session's unindexed events are indexed together once they are this many. */
  readonly batch: number;
  /** A session's events are indexed, however few, once the log has grown this many events past its oldest. */
  readonly lag: number;
  /** The stored mark is moved once it is this many events behind the oldest unindexed one. */
  readonly markEvery: number;
}

export const LOG_INDEX_LIMITS: LogIndexLimits = { batch: 64, lag: 4_096, markEvery: 1_024 };

/** Rows per multi-row index insert, largest first. */
const CHUNKS = [64, 32, 16, 8, 4, 2, 1] as const;

export class SqliteLogIndex {
  /**
   * Each session's committed, unindexed event ids, oldest first (only while `known`). A session is added when its
   * first unindexed event is, and removed when it is indexed, so the Map's order is that of their oldest ids.
   */
  private readonly pending = new Map<string, number[]>();
  /** Whether `pending` holds every unindexed event after `mark` (false: the file must be read, see `recover`). */
  private known = false;
  /** The stored mark, as this process last wrote or read it. */
  private mark = 0;
  private readonly insert: MultiRowInsert;
  private readonly st;

  constructor(
    db: Database.Database,
    private readonly maxEvents: number,
    private readonly limits: LogIndexLimits = LOG_INDEX_LIMITS,
  ) {
    this.insert = new MultiRowInsert(db, 'INSERT INTO session_log_index (session_id, id)', 2, CHUNKS);
    this.st = {
      mark: db.prepare('SELECT indexed FROM session_log_mark').pluck(),
      setMark: db.prepare('UPDATE session_log_mark SET indexed = ?'),
      tailSessions: db.prepare('SELECT DISTINCT session_id FROM session_events WHERE id > ?').pluck(),
      unindex: db.prepare('DELETE FROM session_log_index WHERE session_id = ? AND id > ?'),
      uncount: db.prepare('UPDATE session_logs SET events = events - ? WHERE session_id = ?'),
      // In (session_id, id) order, so each log's pages are written once.
      indexTail: db.prepare(
        'INSERT INTO session_log_index (session_id, id) ' +
          'SELECT session_id, id FROM session_events WHERE id > ? ORDER BY session_id, id',
      ),
      countTail: db
        .prepare(
          'INSERT INTO session_logs (session_id, events) ' +
            'SELECT session_id, count(*) FROM session_events WHERE id > ? GROUP BY session_id ' +
            'ON CONFLICT (session_id) DO UPDATE SET events = events + excluded.events RETURNING session_id, events',
        )
        .raw(true),
      count: db
        .prepare(
          'INSERT INTO session_logs (session_id, events) VALUES (?, ?) ' +
            'ON CONFLICT (session_id) DO UPDATE SET events = events + excluded.events RETURNING events',
        )
        .pluck(),
      // The id of a log's (n+1)-th oldest event: it and the older ones are trimmed.
      trimCut: db
        .prepare('SELECT id FROM session_log_index WHERE session_id = ? ORDER BY id LIMIT 1 OFFSET ?')
        .pluck(),
      trimEvents: db.prepare(
        'DELETE FROM session_events WHERE id IN (SELECT id FROM session_log_index WHERE session_id = ? AND id <= ?)',
      ),
      trimIndex: db.prepare('DELETE FROM session_log_index WHERE session_id = ? AND id <= ?'),
      setLog: db.prepare('UPDATE session_logs SET events = ? WHERE session_id = ?'),
    };
  }

  /** Whether a read must `flush` first: some committed event may not be indexed. */
  get behind(): boolean {
    return !this.known || this.pending.size > 0;
  }

  /** Unindexed events held in memory (tests, and the bound on that memory). */
  get unindexed(): number {
    let n = 0;
    for (const ids of this.pending.values()) n += ids.length;
    return n;
  }

  /** The events a commit just inserted (`rows`: id, session_id, type, at, data per event, ids ascending). */
  added(rows: readonly unknown[], upTo: number): void {
    if (!this.known) return this.recover(upTo);
    let due: string[] | null = null;
    for (let i = 0; i < rows.length; i += 5) {
      const sessionId = rows[i + 1] as string;
      let ids = this.pending.get(sessionId);
      if (!ids) this.pending.set(sessionId, (ids = []));
      if (ids.push(rows[i] as number) === this.limits.batch) (due ??= []).push(sessionId);
    }
    if (due) for (const sessionId of due) this.indexSession(sessionId);
    this.moveMark(upTo);
  }

  /** Indexes every committed event (up to `upTo`, the newest) and moves the mark to it. */
  flush(upTo: number): void {
    if (!this.known) return this.recover(upTo);
    for (const sessionId of this.pending.keys()) this.indexSession(sessionId);
    if (upTo > this.mark) this.setMark(upTo);
  }

  /** Whether everything up to `upTo` is indexed and the mark says so (`flush` would change nothing). */
  settled(upTo: number): boolean {
    return this.known && this.pending.size === 0 && this.mark >= upTo;
  }

  /** Whether a read of one session's log must `flushOne` first. */
  behindFor(sessionId: string): boolean {
    return !this.known || this.pending.has(sessionId);
  }

  /** Indexes one session's committed events (everything, when memory does not know the tail). */
  flushOne(sessionId: string, upTo: number): void {
    if (!this.known) return this.recover(upTo);
    this.indexSession(sessionId);
    this.moveMark(upTo);
  }

  /** A transaction that ran this class's statements rolled back: what it did here is undone from the file. */
  rolledBack(): void {
    this.known = false;
    this.pending.clear();
  }

  /** Indexes, counts and trims everything after the stored mark, read from the file; memory starts over. */
  private recover(upTo: number): void {
    const st = this.st;
    const from = st.mark.get() as number;
    if (upTo > from) {
      // Logs indexed one session at a time after the mark: out of the index and the counts, to be indexed below.
      for (const sessionId of st.tailSessions.all(from) as string[]) {
        const n = st.unindex.run(sessionId, from).changes;
        if (n > 0) st.uncount.run(n, sessionId);
      }
      st.indexTail.run(from);
      for (const [sessionId, count] of st.countTail.all(from) as [string, number][])
        this.trim(sessionId, count);
    }
    this.pending.clear();
    this.known = true;
    this.mark = from;
    if (upTo > from) this.setMark(upTo);
  }

  /** Indexes one session's unindexed events, counts them, and trims its log to `maxEvents`. */
  private indexSession(sessionId: string): void {
    const ids = this.pending.get(sessionId);
    if (!ids) return;
    this.pending.delete(sessionId);
    const rows = new Array<unknown>(ids.length * 2);
    for (let i = 0; i < ids.length; i++) {
      rows[2 * i] = sessionId;
      rows[2 * i + 1] = ids[i];
    }
    this.insert.run(rows);
    this.trim(sessionId, this.st.count.get(sessionId, ids.length) as number);
  }

  /** Trims a log that has `count` indexed events to its newest `maxEvents`. */
  private trim(sessionId: string, count: number): void {
    if (count <= this.maxEvents) return;
    const st = this.st;
    // The log has its counted events in the index (unless some were deleted by hand).
    const cut = st.trimCut.get(sessionId, count - this.maxEvents - 1) as number | undefined;
    if (cut !== undefined) {
      st.trimEvents.run(sessionId, cut);
      st.trimIndex.run(sessionId, cut);
    }
    st.setLog.run(this.maxEvents, sessionId);
  }

  /**
   * Indexes the sessions whose oldest unindexed event is `lag` behind `upTo` (the front of `pending`), then moves
   * the mark to just before the oldest unindexed event when that is `markEvery` past it.
   */
  private moveMark(upTo: number): void {
    const old = upTo - this.limits.lag;
    let oldest: number | undefined;
    for (const [sessionId, ids] of this.pending) {
      if (ids[0]! > old) {
        oldest = ids[0]!;
        break;
      }
      this.indexSession(sessionId);
    }
    const mark = oldest === undefined ? upTo : oldest - 1;
    if (mark >= this.mark + this.limits.markEvery) this.setMark(mark);
  }

  private setMark(mark: number): void {
    this.st.setMark.run(mark);
    this.mark = mark;
  }
}
