/**
 * The SQLite session store (better-sqlite3): one database file in WAL mode, session rows with their filterable
 * fields as columns and the rest as JSON text, and an append-only event log whose ids only grow and are never
 * given twice. The store gives them itself, each one more than the last, kept in memory and read at open
 * (`lastEventId`): trimming keeps each session's newest events, so the store never deletes the newest id. The log is
 * a plain rowid table, not AUTOINCREMENT, which made every commit also rewrite the `sqlite_sequence` page (one WAL
 * page in six under `aip-json-lat`; schema version 2). The schema and its migrations are in sqlite-schema.ts, the
 * statements over it in sqlite-statements.ts, the writes' ops and transaction body (and `lastEventId`) in
 * sqlite-session-writes.ts, the options in sqlite-session-options.ts.
 *
 * The hot path. An AIP task writes, per command round trip, one update of its checkpoint and two events; the
 * layout keeps those writes small:
 * - A step's fields (checkpoint, updated_at, version) are in the narrow `session_progress` table, not in the
 *   `sessions` row (schema version 3; see sqlite-statements.ts): a commit of a few steps writes one or two of its
 *   pages, not one `sessions` page per task.
 * - A task's `task` JSON (with the plan request, often 50-100 KB) is in `session_tasks`, not in its `sessions` row:
 *   SQLite rewrites a whole row on any UPDATE, so in the row it was copied through its overflow pages by every
 *   checkpoint write (~30 µs of CPU each with a 93 KB plan, measured). It is written only by a create or an update
 *   that gives `task` (task start and end), and read with the row (a subquery) by `get` and `list`. Its filterable
 *   keys (`task_name`, `requester`, `executor`) stay indexed columns of the row. `context` stays in the row: it is
 *   `{}` for tasks, so moving it gains nothing there (a REST session with a large one pays for it on each of its
 *   updates, ~20 µs per 93 KB).
 * - No index on `updated_at`: every update moves it, which cost ~1 µs a round trip (5% of the store's share);
 *   `updated_after`/`updated_before` filter the rows the other conditions find, in created order, so a selective
 *   one with no other filter scans the table (~13 ms at 50,000 sessions, against 0.1 ms with the index). PostgreSQL
 *   has none either.
 * - Event logs are indexed by session in batches (below), so a commit appends its events at the end of the table
 *   and does not also write one index page per session it touched (which was most of a commit's pages).
 *
 * Durability. `synchronous=NORMAL` (the default here) in WAL mode: a commit is written to the WAL with write(2) but
 * not fsync'd; the WAL is fsync'd at each checkpoint (every `checkpointMs`, by a worker thread off the event loop:
 * sqlite-checkpointer.ts; or, with `checkpointMs: 0`, SQLite's own every ~4 MB of WAL, inside a commit). So a resolved
 * write survives the aipd process dying in any way (kill -9, OOM, a crash: the data is in the OS page cache), but a
 * power loss or kernel crash may roll back the writes committed since the last checkpoint — whole transactions,
 * never a torn or corrupt database. `synchronous: 'full'` fsyncs the WAL at every commit, so a resolved write
 * survives power loss too; the price is one fsync per group commit, taken on the event loop (better-sqlite3 is
 * synchronous), where it stalls every connection of the node for the disk's flush latency. NORMAL is the default
 * because process death is the failure aipd must ride out (crash-resume), and a host losing power loses its live
 * agent connections and in-flight tasks anyway; choose FULL where a record must outlive the host's power.
 *
 * Group commit. `create`, `update`, `delete` and `appendEvents` queue; the queue is committed as ONE transaction
 * at most `groupCommitMs` after its first write (0: on setImmediate), and each write's promise resolves after the
 * commit, in call order. Inside the batch every write is checked on its own: an update whose version moved on, or
 * a create of an existing id, resolves null and the rest commits. If the transaction fails (an error, not a
 * mismatch), each write of the batch is retried in a transaction of its own, so one bad write rejects alone. A
 * transaction takes at most 1,000 writes (the rest follow on the next setImmediate), since it runs on the event
 * loop. With the default 0 the writes of one turn of the event loop commit together at its end (under load a turn
 * carries the frames of many connections), so an awaited write waits for one commit, not for a timer; a positive
 * `groupCommitMs` batches more per transaction for that much more latency on every awaited write (a task step).
 *
 * Read-your-writes. Reads (`get`, `list`, `events`, `allEvents`) first commit whatever is queued, synchronously
 * (better-sqlite3 is synchronous, so nothing can slip in between), and then read committed state: a read issued
 * after a write was called sees it, even when nobody awaited the write.
 *
 * Event logs. `session_events` is keyed by id alone; each session's log is found through `session_log_index`
 * (session_id, id), which `sqlite-log-index.ts` fills one session at a time: a session's events are indexed in the
 * commit that brings its unindexed events to 64 (one multi-row insert into that log's pages, so the indexing is
 * spread over the commits), a quieter session's in the commit that takes the log 4,096 events past them, a
 * session's before any `events` read of it, and every session's before an `allEvents` read and at close.
 * Indexing also counts the events into `session_logs`, per session, and trims each log over `maxEventsPerSession`
 * to its newest, deleting exactly the surplus with no scan of the log. So what a read sees is always trimmed, as if
 * each write had trimmed; only the file may hold a little more for a moment. A mark (`session_log_mark`) says up to
 * which event everything is indexed; at open, the tail after it (what a crash left: about 5,000 events at most) is
 * indexed from the file. One process per database file.
 */
import Database from 'better-sqlite3';
import { GroupCommit } from './group-commit.js';
import { LOG_INDEX_LIMITS, SqliteLogIndex } from './sqlite-log-index.js';
import {
  DEFAULT_SQLITE_CHECKPOINT_MS,
  DEFAULT_SQLITE_CHECKPOINT_FOLLOW_UP_MS,
  DEFAULT_SQLITE_CHECKPOINT_FOLLOW_UPS,
  DEFAULT_SQLITE_CHECKPOINT_NICE,
  DEFAULT_SQLITE_WAL_MAX_BYTES,
  WalCheckpointer,
} from './sqlite-checkpointer.js';
import { migrate, schemaVersion } from './sqlite-schema.js';
import {
  BUSY_TIMEOUT_MS,
  DEFAULT_WAL_RESET_BYTES,
  type SqliteSessionStoreOptions,
} from './sqlite-session-options.js';
import { TASK_BIT, applyBatch, lastEventId, taskAt, type Op } from './sqlite-session-writes.js';
import {
  SELECT_COLUMNS,
  SESSION_FROM,
  UpdateStatements,
  createParams,
  prepareStatements,
  type Statements,
} from './sqlite-statements.js';
import type { SessionRecord, SessionStatus } from './session-model.js';
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
} from './session-store.js';
import {
  encodeChanges,
  encodeEvent,
  listQuery,
  pageOf,
  eventsWithin,
  rowToEvent,
  rowToRecord,
  countQuery,
  countsOf,
  type Settle,
} from './sql-schema.js';

export type { SqliteSessionStoreOptions } from './sqlite-session-options.js';

/** Writes per transaction at most: a commit blocks the event loop (better-sqlite3 is synchronous), ~25 µs a write. */
const MAX_BATCH = 1_000;

export class SqliteSessionStore implements SessionStore {
  private db: Database.Database | null = null;
  private st: Statements | null = null;
  private updates: UpdateStatements | null = null;
  private readonly lists = new Map<string, Database.Statement>();
  private readonly queue: GroupCommit<Op>;
  private readonly maxEvents: number;
  private tx: ((batch: Op[]) => unknown[]) | null = null;
  private indexTx: (() => void) | null = null;
  private indexOneTx: ((sessionId: string) => void) | null = null;
  /** What of the event log is not indexed yet, per session (see "Event logs" above). */
  private log: SqliteLogIndex | null = null;
  /** The newest event id given: committed, or given by the transaction being applied (reset if it fails). */
  private lastId = 0;
  private checkpointer: WalCheckpointer | null = null;

  constructor(private readonly opts: SqliteSessionStoreOptions) {
    this.maxEvents = opts.maxEventsPerSession ?? 10_000;
    // Trimming keeps each log's newest event, and so the newest id of all (see the header).
    if (!Number.isInteger(this.maxEvents) || this.maxEvents < 1)
      throw new Error(`maxEventsPerSession must be a positive integer, got ${this.maxEvents}`);
    this.queue = new GroupCommit<Op>(opts.groupCommitMs, (batch) => this.commit(batch), MAX_BATCH);
  }

  async open(): Promise<void> {
    if (this.db) return;
    this.openDb();
    const every = this.opts.checkpointMs ?? DEFAULT_SQLITE_CHECKPOINT_MS;
    if (every <= 0 || this.opts.path === ':memory:') return;
    const checkpointer = new WalCheckpointer({
      db: this.db!,
      path: this.opts.path,
      everyMs: every,
      resetBytes: this.opts.walResetBytes ?? DEFAULT_WAL_RESET_BYTES,
      maxBytes: this.opts.walMaxBytes ?? DEFAULT_SQLITE_WAL_MAX_BYTES,
      nice: this.opts.checkpointNice ?? DEFAULT_SQLITE_CHECKPOINT_NICE,
      busyMs: BUSY_TIMEOUT_MS,
      followUpAfterMs: this.opts.checkpointFollowUpMs ?? DEFAULT_SQLITE_CHECKPOINT_FOLLOW_UP_MS,
      maxFollowUps: this.opts.checkpointFollowUps ?? DEFAULT_SQLITE_CHECKPOINT_FOLLOW_UPS,
      onFailure: (err) => {
        if (this.checkpointer === checkpointer) this.checkpointer = null;
        this.opts.onCheckpointFailure?.(err);
      },
    });
    this.checkpointer = checkpointer;
    await checkpointer.ready;
  }

  /** The background checkpointer, while it runs (tests). */
  get walCheckpointer(): WalCheckpointer | null {
    return this.checkpointer;
  }

  private openDb(): void {
    let db: Database.Database | null = null;
    try {
      db = new Database(this.opts.path);
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      // Refuse a newer schema before changing anything in the file.
      schemaVersion(db);
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.opts.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      db.pragma('journal_size_limit = 67108864');
      db.pragma('cache_size = -32000');
      db.pragma('foreign_keys = ON');
      migrate(db, this.opts.onMigration);
      this.st = prepareStatements(db);
      this.updates = new UpdateStatements(db);
      this.lastId = lastEventId(db);
      const run = db.transaction((batch: Op[]) => this.apply(batch));
      this.tx = (batch) => run.immediate(batch);
      const log = (this.log = new SqliteLogIndex(db, this.maxEvents, this.opts.logIndex ?? LOG_INDEX_LIMITS));
      const index = db.transaction((sessionId: string | null) =>
        sessionId === null ? log.flush(this.lastId) : log.flushOne(sessionId, this.lastId),
      );
      const indexing = (sessionId: string | null): void => {
        try {
          index.immediate(sessionId);
        } catch (err) {
          log.rolledBack();
          throw err;
        }
      };
      this.indexTx = () => indexing(null);
      this.indexOneTx = (sessionId) => indexing(sessionId);
      // The tail a crash left unindexed.
      this.indexLog();
      this.db = db;
    } catch (err) {
      this.st = this.tx = this.indexTx = this.indexOneTx = this.log = null;
      db?.close();
      throw err instanceof Error ? err : new Error(String(err));
    }
  }

  async close(): Promise<void> {
    if (!this.db) return;
    const checkpointer = this.checkpointer;
    this.checkpointer = null;
    // The worker's connection closes first: the last connection to close checkpoints the WAL and removes it.
    await checkpointer?.stop();
    if (!this.db) return;
    this.queue.drainSync();
    try {
      // Everything indexed and the mark at the newest event: the next open has no tail to index.
      if (!this.log!.settled(this.lastId)) this.indexTx!();
    } catch {
      // indexed at the next open
    }
    try {
      this.db.pragma('optimize');
    } catch {
      // only planner statistics
    }
    this.db.close();
    this.db = this.st = this.tx = this.indexTx = this.indexOneTx = this.log = this.updates = null;
    this.lists.clear();
  }

  create(record: SessionRecord, event: NewEvent): Promise<SessionEvent | null> {
    return this.enqueue((resolve, reject) => ({
      kind: 'create',
      params: createParams(record),
      event: encodeEvent(event),
      resolve,
      reject,
    }));
  }

  update(
    id: string,
    version: number,
    changes: SessionChanges,
    event: NewEvent,
  ): Promise<UpdateResult | null> {
    return this.enqueue((resolve, reject) => {
      const { mask, values } = encodeChanges(changes);
      // The task JSON goes to its own table; its key columns stay in `values`.
      const task = (mask & TASK_BIT) === 0 ? undefined : (values.splice(taskAt(mask), 1)[0] as string | null);
      return { kind: 'update', id, version, mask, values, task, event: encodeEvent(event), resolve, reject };
    });
  }

  delete(id: string, event: NewEvent): Promise<SessionEvent | null> {
    return this.enqueue((resolve, reject) => ({
      kind: 'delete',
      id,
      event: encodeEvent(event),
      resolve,
      reject,
    }));
  }

  appendEvents(events: readonly NewEvent[]): Promise<SessionEvent[]> {
    if (events.length === 0) return Promise.resolve([]);
    return this.enqueue((resolve, reject) => ({
      kind: 'append',
      events: events.map(encodeEvent),
      resolve,
      reject,
    }));
  }

  get(id: string): Promise<SessionRecord | null> {
    return this.read((st) => {
      const row = st.get.get(id) as unknown[] | undefined;
      return row ? rowToRecord(row) : null;
    });
  }

  list(filter: SessionFilter, page: PageRequest): Promise<Page> {
    return this.read(() => {
      const q = listQuery(filter, page, () => '?', SELECT_COLUMNS, SESSION_FROM);
      return pageOf(this.statement(q.shape, q.sql).all(...q.params) as unknown[][], page.limit);
    });
  }

  count(statuses: readonly SessionStatus[]): Promise<SessionCount[]> {
    return this.read(() => {
      const q = countQuery(statuses, () => '?');
      return countsOf(this.statement(`count:${statuses.length}`, q.sql).all(...q.params) as unknown[][]);
    });
  }

  events(sessionId: string, after: number, limit: number): Promise<SessionEvent[]> {
    return this.read((st) => {
      // Only this log needs to be indexed (and trimmed) for this read.
      if (this.log!.behindFor(sessionId)) this.indexOneTx!(sessionId);
      return (st.events.all(sessionId, after, limit) as unknown[][]).map(rowToEvent);
    });
  }

  eventPage(sessionId: string | null, after: number, limit: number, maxChars: number): Promise<EventPage> {
    return this.read((st) => {
      if (sessionId === null) this.indexLog();
      else if (this.log!.behindFor(sessionId)) this.indexOneTx!(sessionId);
      const rows =
        sessionId === null ? st.allEvents.iterate(after, limit) : st.events.iterate(sessionId, after, limit);
      return eventsWithin(rows as IterableIterator<unknown[]>, maxChars);
    });
  }

  allEvents(after: number, limit: number): Promise<SessionEvent[]> {
    return this.read((st) => {
      // Trimming happens when a log is indexed: what it would trim must not show.
      this.indexLog();
      return (st.allEvents.all(after, limit) as unknown[][]).map(rowToEvent);
    });
  }

  /**
   * Queues the op `make` builds, with its settle functions as its own fields. It is built at call time (what the
   * caller changes later is not ours), inside the promise's executor (so a throw rejects).
   */
  private enqueue<T>(make: (resolve: Settle['resolve'], reject: Settle['reject']) => Op): Promise<T> {
    if (!this.db) return Promise.reject(new Error('session store is not open'));
    return new Promise<T>((resolve, reject) => {
      this.queue.add(make(resolve as Settle['resolve'], reject));
    });
  }

  /** The raw-row statement of a read whose SQL varies (`shape` names it): made once, up to 256 shapes kept. */
  private statement(shape: string, sql: string): Database.Statement {
    let stmt = this.lists.get(shape);
    if (!stmt) {
      stmt = this.db!.prepare(sql).raw(true);
      if (this.lists.size < 256) this.lists.set(shape, stmt);
    }
    return stmt;
  }

  /** Commits what is queued, then reads. */
  private read<T>(fn: (st: Statements) => T): Promise<T> {
    if (!this.st) return Promise.reject(new Error('session store is not open'));
    try {
      this.queue.drainSync();
      return Promise.resolve(fn(this.st));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Indexes every unindexed event, in a transaction of its own, when there is one. */
  private indexLog(): void {
    if (this.log!.behind) this.indexTx!();
  }

  /** Commits a batch in one transaction and settles its ops in order; on an error, each op on its own. */
  private commit(batch: Op[]): void {
    let results: unknown[];
    const lastId = this.lastId;
    try {
      if (!this.tx) throw new Error('session store is closed');
      results = this.tx(batch);
    } catch (err) {
      // Rolled back, and so is the indexing it did: the next transaction reads what is unindexed from the file.
      this.log?.rolledBack();
      this.lastId = lastId;
      if (batch.length > 1 && this.tx) for (const op of batch) this.commit([op]);
      else for (const op of batch) op.reject(err);
      return;
    }
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]);
  }

  /** The body of a batch's transaction (sqlite-session-writes.ts); moves `lastId` to the newest id it gave. */
  private apply(batch: Op[]): unknown[] {
    const { results, lastId } = applyBatch(batch, this.lastId, this.st!, this.updates!, this.log!);
    this.lastId = lastId;
    return results;
  }
}
