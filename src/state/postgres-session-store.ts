/**
 * The PostgreSQL session store (node-postgres Pool): the SQLite store's schema in PostgreSQL types, so several
 * aipd nodes can share one database. The schema and its migration are in postgres-schema.ts, the SQL in
 * postgres-statements.ts, a flush's writes in postgres-session-writes.ts.
 *
 * Types. JSON fields are `json`, not `jsonb`: `json` keeps the text `JSON.stringify` made, so a record comes back
 * exactly as given (same key order; `jsonb` reorders keys, and refuses "\u0000" and lone surrogates, which
 * JSON.stringify emits). Nothing queries inside these documents; the filterable fields are columns. Times are
 * ISO-8601 UTC millisecond strings in `text` columns (this fixed format sorts as text), and every text key column
 * uses COLLATE "C" so ordering and cursors compare bytes, as the other stores do. Event ids are a bigserial.
 *
 * Indexes. On the filterable columns, as SQLite's, and none on `updated_at`: every update moves it, and an update
 * that changes no indexed column is a HOT update (no index entry written, dead versions pruned within the page;
 * `fillfactor = 70` leaves the room). An index on `updated_at` made every checkpoint write insert into all nine
 * indexes and measured ~5× slower per row. `updated_after`/`updated_before` are applied to the rows the other
 * conditions find, in created order.
 *
 * The `task` JSON stays in the row (SQLite keeps it in a table of its own): PostgreSQL stores a large one
 * compressed and out of line (TOAST), and an UPDATE that does not change it copies only its pointer. Measured:
 * checkpoint writes of task sessions with a 93 KB plan request cost what they cost with no task at all, within
 * the noise (~40 µs of aipd CPU and ~37 µs of PostgreSQL CPU a round trip, either way).
 *
 * Durability. A write resolves after its transaction's COMMIT returned, so it is as durable as the server's
 * `synchronous_commit` makes it (the default, `on`: flushed to the WAL on disk, surviving power loss).
 *
 * Group commit. Writes queue, and one flush commits them as ONE transaction on one pooled connection, at most
 * `groupCommitMs` after the first (0: on setImmediate); writes that arrive while a flush runs go into the next,
 * which starts when it ends. Each write's promise resolves after the COMMIT, in call order. A flush takes a fixed
 * handful of round trips whatever its size, and writes each session row at most once:
 *   1. `SELECT id, version .. FOR UPDATE` the rows the batch writes (one statement; nothing else of a row is read:
 *      a flush writes only the columns its ops give, and an update resolves its new version, not the record);
 *   2. replay the batch on them in memory, in call order, every write checked on its own — an update applies
 *      only at the version it names, a create only where there is no row, a delete only where there is one; a
 *      write that fails its check resolves null and the rest of the batch goes on (pipelined updates of one
 *      session, each naming the version the previous one makes, all apply, in order);
 *   3. write each row's outcome once, set-based (`unnest` of parameter arrays): one INSERT, one DELETE, and one
 *      UPDATE per set of changed columns, each guarded by the version read in 1 (a mismatch, which the locks
 *      rule out, reruns the flush);
 *   4. insert the events of the writes that applied, in call order (their ids follow it), with the per-session
 *      counts that trim each log to `maxEventsPerSession`, in one statement (plus one to trim, when needed).
 * Replaying in memory matters: updating a row several times in one transaction leaves a dead version per update
 * that every later statement of the transaction wades through, so pipelined updates of a hot session would get
 * slower the longer the batch. A flush that fails with a database error about the data is retried one write per
 * transaction, so the bad write rejects alone.
 *
 * Event order across nodes. Each flush takes a transaction-scoped advisory lock before writing, so event-writing
 * transactions of all nodes commit one after another and event ids become visible in id order: a reader paging
 * `allEvents(after)` never skips an id that commits later.
 *
 * Read-your-writes. Reads first wait for every write queued before them to commit (starting a flush at once if
 * none runs), then read committed state.
 */
import pg from 'pg';
import { GroupCommit } from './group-commit.js';
import { migrate } from './postgres-schema.js';
import { PostgresFlushWriter, RaceError, type Op } from './postgres-session-writes.js';
import { SQL, TYPES } from './postgres-statements.js';
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
  recordParams,
  rowToEvent,
  rowToRecord,
  type MigrationProgress,
  countQuery,
  countsOf,
  type Settle,
} from './sql-schema.js';

export interface PostgresSessionStoreOptions {
  readonly connectionString: string;
  /** Events kept per session; the oldest go first. Default 10,000. */
  readonly maxEventsPerSession?: number;
  /** Longest a write waits for others to share its transaction. Default 0: the next setImmediate. */
  readonly groupCommitMs?: number;
  /** Connections in the pool (one flush at a time uses one; reads use the rest). Default 10. */
  readonly poolSize?: number;
  /** `storeIdleInTransactionMs`: PostgreSQL rolls back a transaction left idle this long. Default 5,000. */
  readonly idleInTransactionMs?: number;
  /** Told as a schema migration starts and as each version is applied (sql-schema.ts). */
  readonly onMigration?: (p: MigrationProgress) => void;
}

/**
 * The advisory lock key every commit holds, so event ids become visible in id order (see "Event order across nodes"
 * above; migrations take their own, postgres-schema.ts). Exported for tests that hold it.
 */
export const EVENTS_LOCK = 7_301_990_002;

/** Writes per flush at most: bigger flushes amortise round trips and the fsync, but hold row and event locks longer. */
const MAX_BATCH = 4_000;

export class PostgresSessionStore implements SessionStore {
  private pool: pg.Pool | null = null;
  private readonly queue: GroupCommit<Op>;
  private readonly writer: PostgresFlushWriter;
  private readonly listNames = new Map<string, string>();

  constructor(private readonly opts: PostgresSessionStoreOptions) {
    const maxEvents = opts.maxEventsPerSession ?? 10_000;
    // As in the SQLite store: a trim must keep each log's newest event.
    if (!Number.isInteger(maxEvents) || maxEvents < 1)
      throw new Error(`maxEventsPerSession must be a positive integer, got ${maxEvents}`);
    this.writer = new PostgresFlushWriter(maxEvents);
    this.queue = new GroupCommit<Op>(opts.groupCommitMs, (batch) => this.commit(batch), MAX_BATCH);
  }

  async open(): Promise<void> {
    if (this.pool) return;
    const pool = new pg.Pool({
      connectionString: this.opts.connectionString,
      max: this.opts.poolSize ?? 10,
      types: TYPES,
      // A process paused mid-transaction (SIGSTOP, a frozen VM) must not hold its row locks for ever: in a cluster
      // the other nodes must be able to mark its sessions crashed. Its transaction is rolled back instead.
      idle_in_transaction_session_timeout: this.opts.idleInTransactionMs ?? 5_000,
    });
    // An idle connection that breaks is dropped by the pool; the next query reports the problem.
    pool.on('error', () => {});
    // A checked-out connection has no 'error' listener of the pool's: one the server ends mid-transaction (the
    // idle-in-transaction timeout after a pause, an administrator) would throw from an 'error' event and end the
    // process. The query in flight, or the next one, rejects with the cause, and the commit releases it as broken.
    pool.on('connect', (client) => client.on('error', () => {}));
    try {
      await migrate(pool, this.opts.onMigration);
    } catch (err) {
      await pool.end();
      throw err;
    }
    this.pool = pool;
  }

  async close(): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    await this.queue.drain();
    this.pool = null;
    await pool.end();
  }

  create(record: SessionRecord, event: NewEvent): Promise<SessionEvent | null> {
    return this.enqueue((s) => ({
      kind: 'create',
      id: record.id,
      params: recordParams(record),
      event: encodeEvent(event),
      ...s,
    }));
  }

  update(
    id: string,
    version: number,
    changes: SessionChanges,
    event: NewEvent,
  ): Promise<UpdateResult | null> {
    return this.enqueue((s) => {
      const { mask, values } = encodeChanges(changes);
      return { kind: 'update', id, version, mask, values, event: encodeEvent(event), ...s };
    });
  }

  delete(id: string, event: NewEvent): Promise<SessionEvent | null> {
    return this.enqueue((s) => ({ kind: 'delete', id, event: encodeEvent(event), ...s }));
  }

  appendEvents(events: readonly NewEvent[]): Promise<SessionEvent[]> {
    if (events.length === 0) return Promise.resolve([]);
    return this.enqueue((s) => ({ kind: 'append', events: events.map(encodeEvent), ...s }));
  }

  async get(id: string): Promise<SessionRecord | null> {
    const rows = await this.read('aipd_get', SQL.get, [id]);
    return rows[0] ? rowToRecord(rows[0]) : null;
  }

  async list(filter: SessionFilter, page: PageRequest): Promise<Page> {
    const q = listQuery(filter, page, (n) => `$${n}`);
    let name = this.listNames.get(q.shape);
    if (name === undefined && this.listNames.size < 256)
      this.listNames.set(q.shape, (name = `aipd_list_${this.listNames.size}`));
    return pageOf(await this.read(name, q.sql, q.params), page.limit);
  }

  async count(statuses: readonly SessionStatus[]): Promise<SessionCount[]> {
    const q = countQuery(statuses, (n) => `$${n}`);
    return countsOf(await this.read(`aipd_count_${statuses.length}`, q.sql, q.params));
  }

  async events(sessionId: string, after: number, limit: number): Promise<SessionEvent[]> {
    return (await this.read('aipd_events', SQL.events, [sessionId, after, limit])).map(rowToEvent);
  }

  async eventPage(
    sessionId: string | null,
    after: number,
    limit: number,
    maxChars: number,
  ): Promise<EventPage> {
    const rows =
      sessionId === null
        ? await this.read('aipd_all_event_page', SQL.allEventPage, [after, limit, maxChars])
        : await this.read('aipd_event_page', SQL.eventPage, [sessionId, after, limit, maxChars]);
    // Each row ends with the page's row count before the budget was applied.
    const inPage = rows.length > 0 ? Number(rows[0]![5]) : 0;
    return { events: rows.map(rowToEvent), cut: rows.length < inPage };
  }

  async allEvents(after: number, limit: number): Promise<SessionEvent[]> {
    return (await this.read('aipd_all_events', SQL.allEvents, [after, limit])).map(rowToEvent);
  }

  private enqueue<T>(make: (s: Settle) => Op): Promise<T> {
    if (!this.pool) return Promise.reject(new Error('session store is not open'));
    return new Promise<T>((resolve, reject) => {
      this.queue.add(make({ resolve: resolve as (v: unknown) => void, reject }));
    });
  }

  /** Waits for the writes queued before it, then runs a (named, so prepared once per connection) query. */
  private async read(name: string | undefined, text: string, values: unknown[]): Promise<unknown[][]> {
    if (!this.pool) throw new Error('session store is not open');
    await this.queue.drain();
    const pool = this.pool as pg.Pool | null;
    if (!pool) throw new Error('session store is not open');
    const res = await pool.query<unknown[]>({ name, text, values, rowMode: 'array' });
    return res.rows;
  }

  /** Commits a batch in one transaction and settles its ops in order (see the file comment). */
  private async commit(batch: Op[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const pool = this.pool;
      if (!pool) {
        for (const op of batch) op.reject(new Error('session store is closed'));
        return;
      }
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        for (const op of batch) op.reject(err);
        return;
      }
      let results: unknown[] | undefined;
      let failure: unknown;
      let broken = false;
      try {
        await client.query(`BEGIN; SELECT pg_advisory_xact_lock(${EVENTS_LOCK})`);
        results = await this.writer.apply(client, batch);
        await client.query('COMMIT');
      } catch (err) {
        failure = err;
        await client.query('ROLLBACK').catch(() => (broken = true));
      } finally {
        client.release(broken || (failure !== undefined && !(failure instanceof pg.DatabaseError)));
      }
      if (results !== undefined && failure === undefined) {
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]);
      } else if (failure instanceof RaceError && attempt < 3) {
        continue;
      } else if (batch.length > 1 && isDataError(failure)) {
        for (const op of batch) await this.commit([op]);
      } else {
        for (const op of batch) op.reject(failure);
      }
      return;
    }
  }
}

/** A server error about the data of some write (so each write is retried alone), not the connection or server. */
function isDataError(err: unknown): boolean {
  if (!(err instanceof pg.DatabaseError) || typeof err.code !== 'string') return false;
  return !['08', '53', '57', '58', 'XX'].includes(err.code.slice(0, 2));
}
