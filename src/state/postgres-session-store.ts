/**
 * The PostgreSQL session store (node-postgres Pool): the SQLite store's schema in PostgreSQL types, so several
 * aipd nodes can share one database.
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
  READ_COLUMNS,
  SCHEMA_VERSION,
  SCHEMA_VERSION_KEY,
  SESSION_INDEXES_V1,
  WRITE_COLUMNS,
  changeColumns,
  checkSchemaVersion,
  decodeEvent,
  encodeChanges,
  encodeEvent,
  listQuery,
  pageOf,
  recordParams,
  rowToEvent,
  rowToRecord,
  type EncodedEvent,
  type MigrationProgress,
  countQuery,
  countsOf,
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

/** The schema, one list of statements per version (index 0 makes version 1). */
const MIGRATIONS: readonly (readonly string[])[] = [
  [
    `CREATE TABLE sessions (
      id text COLLATE "C" PRIMARY KEY,
      agent_id text COLLATE "C" NOT NULL,
      session_type text COLLATE "C" NOT NULL,
      status text COLLATE "C" NOT NULL,
      context json NOT NULL,
      checkpoint json,
      runtime_backend text NOT NULL,
      runtime_metadata json NOT NULL,
      created_at text COLLATE "C" NOT NULL,
      updated_at text COLLATE "C" NOT NULL,
      status_history json NOT NULL,
      task json,
      managed_by text COLLATE "C",
      version integer NOT NULL,
      task_name text COLLATE "C",
      requester text COLLATE "C",
      executor text COLLATE "C"
    ) WITH (fillfactor = 70)`,
    ...SESSION_INDEXES_V1,
    `CREATE TABLE session_events (
      id bigserial PRIMARY KEY,
      session_id text COLLATE "C" NOT NULL,
      type text NOT NULL,
      at text NOT NULL,
      data json NOT NULL
    )`,
    'CREATE INDEX session_events_session ON session_events (session_id, id)',
    // Events in each session's log, so trimming deletes exactly the surplus.
    'CREATE TABLE session_logs (session_id text COLLATE "C" PRIMARY KEY, events bigint NOT NULL) WITH (fillfactor = 70)',
  ],
];
if (MIGRATIONS.length !== SCHEMA_VERSION) throw new Error('postgres migrations and SCHEMA_VERSION disagree');

/** Advisory lock keys: migrations at open, and event-writing transactions (see above). */
const MIGRATION_LOCK = 7_301_990_001;
/** Held by every commit: event ids become visible in id order. Exported for tests that hold it. */
export const EVENTS_LOCK = 7_301_990_002;

/** PostgreSQL types of the write columns, for the arrays `unnest` takes apart. */
const COLUMN_TYPES: Record<string, string> = {
  context: 'json',
  checkpoint: 'json',
  runtime_metadata: 'json',
  status_history: 'json',
  task: 'json',
  version: 'integer',
};
const typeOf = (col: string): string => COLUMN_TYPES[col] ?? 'text';

/** json as its text (rowToRecord parses it), bigint as a number (event ids stay far below 2^53). */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === 114) return (v: string) => v;
    if (oid === 20) return Number;
    return pg.types.getTypeParser(oid, format) as (v: string) => unknown;
  }) as pg.CustomTypesConfig['getTypeParser'],
};

const EVENT_COLUMNS = 'id, session_id, type, at, data';

/**
 * A page of events (`where`, at most `limit`) cut before the event whose data takes the running total of JSON
 * characters past `maxChars`, the first always in; each row also carries the page's size before the cut.
 */
function sizedPage(where: string, limit: string, maxChars: string): string {
  return (
    `SELECT ${EVENT_COLUMNS}, in_page FROM (` +
    `SELECT ${EVENT_COLUMNS}, count(*) OVER () AS in_page, row_number() OVER (ORDER BY id) AS n, ` +
    'sum(length(data::text)) OVER (ORDER BY id) AS chars ' +
    `FROM (SELECT ${EVENT_COLUMNS} FROM session_events WHERE ${where} ORDER BY id LIMIT ${limit}) page` +
    `) sized WHERE n = 1 OR chars <= ${maxChars} ORDER BY id`
  );
}
const SQL = {
  insert:
    `INSERT INTO sessions (${WRITE_COLUMNS.join(', ')}) ` +
    `SELECT * FROM unnest(${WRITE_COLUMNS.map((c, i) => `$${i + 1}::${typeOf(c)}[]`).join(', ')}) ` +
    'ON CONFLICT (id) DO NOTHING',
  delete: 'DELETE FROM sessions WHERE id = ANY($1::text[])',
  // The rows a flush writes, locked until it commits: only their versions (a flush writes what its ops give, and
  // never needs the rest, such as the `task` JSON with its plan request).
  lock: 'SELECT id, version FROM sessions WHERE id = ANY($1::text[]) FOR UPDATE',
  get: `SELECT ${READ_COLUMNS.join(', ')} FROM sessions WHERE id = $1`,
  events: `SELECT ${EVENT_COLUMNS} FROM session_events WHERE session_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
  allEvents: `SELECT ${EVENT_COLUMNS} FROM session_events WHERE id > $1 ORDER BY id LIMIT $2`,
  eventPage: sizedPage('session_id = $1 AND id > $2', '$3', '$4'),
  allEventPage: sizedPage('id > $1', '$2', '$3'),
  // The batch's events in call order (ids follow it), and the logs they push over the limit ($5).
  appendEvents: `WITH ins AS (
      INSERT INTO session_events (session_id, type, at, data)
      SELECT session_id, type, at, data
      FROM unnest($1::text[], $2::text[], $3::text[], $4::json[]) WITH ORDINALITY AS x(session_id, type, at, data, n)
      ORDER BY n
      RETURNING id, session_id
    ), counts AS (
      INSERT INTO session_logs AS l (session_id, events)
      SELECT session_id, count(*) FROM ins GROUP BY session_id
      ON CONFLICT (session_id) DO UPDATE SET events = l.events + excluded.events
      RETURNING session_id, events
    )
    SELECT (SELECT array_agg(id ORDER BY id) FROM ins) AS ids,
      (SELECT array_agg(session_id ORDER BY session_id) FROM counts WHERE events > $5) AS over_ids,
      (SELECT array_agg(events - $5 ORDER BY session_id) FROM counts WHERE events > $5) AS over_by`,
  // Deletes the oldest $2[i] events of session $1[i], and sets those logs' counts to the limit ($3).
  trim: `WITH x AS (SELECT * FROM unnest($1::text[], $2::bigint[]) AS x(session_id, n)),
    d AS (DELETE FROM session_events WHERE id IN (
      SELECT e.id FROM x CROSS JOIN LATERAL (
        SELECT id FROM session_events WHERE session_id = x.session_id ORDER BY id LIMIT x.n) e))
    UPDATE session_logs SET events = $3 WHERE session_id IN (SELECT session_id FROM x)`,
};

/** Writes per flush at most: bigger flushes amortise round trips and the fsync, but hold row and event locks longer. */
const MAX_BATCH = 4_000;

type Settle = { resolve: (v: unknown) => void; reject: (err: unknown) => void };
type RecordOp =
  | { kind: 'create'; id: string; params: unknown[]; event: EncodedEvent }
  | { kind: 'update'; id: string; version: number; mask: number; values: unknown[]; event: EncodedEvent }
  | { kind: 'delete'; id: string; event: EncodedEvent };
type Op = Settle & (RecordOp | { kind: 'append'; events: EncodedEvent[] });

export class PostgresSessionStore implements SessionStore {
  private pool: pg.Pool | null = null;
  private readonly queue: GroupCommit<Op>;
  private readonly maxEvents: number;
  private readonly updateSql = new Map<number, { name: string; text: string; columns: number[] }>();
  private readonly listNames = new Map<string, string>();

  constructor(private readonly opts: PostgresSessionStoreOptions) {
    this.maxEvents = opts.maxEventsPerSession ?? 10_000;
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
        results = await this.apply(client, batch);
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

  /**
   * The body of a flush's transaction: locks the rows the batch writes, replays the batch on them in call order
   * (every check on its own), writes each row's outcome once, then logs the events of what applied, in call order.
   * Resolves the results of the batch's ops, in order.
   */
  private async apply(client: pg.PoolClient, batch: Op[]): Promise<unknown[]> {
    const ids = new Set<string>();
    for (const op of batch) if (op.kind !== 'append') ids.add(op.id);
    const before = new Map<string, unknown[]>();
    if (ids.size > 0) {
      const res = await client.query<unknown[]>({
        name: 'aipd_lock',
        text: SQL.lock,
        values: [[...ids]],
        rowMode: 'array',
      });
      for (const [id, version] of res.rows) {
        const row = new Array<unknown>(WRITE_COLUMNS.length);
        row[0] = id;
        row[VERSION] = version;
        before.set(id as string, row);
      }
    }

    // Replay: `rows` holds each session's row (WRITE_COLUMNS) as the batch leaves it; `dirty` its changed columns.
    // A row that was in the table holds only its id, its version and what the batch changed, and only changed
    // columns are written back (a created row comes whole from its create).
    const rows = new Map<string, unknown[] | null>(before);
    const dirty = new Map<string, number>();
    /** Per op: whether it applied. */
    const done = new Array<boolean>(batch.length).fill(false);
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i]!;
      if (op.kind === 'append') continue;
      const cur = rows.get(op.id) ?? null;
      if (op.kind === 'create') {
        if (cur) continue;
        rows.set(op.id, op.params);
        dirty.set(op.id, ALL_COLUMNS);
        done[i] = true;
      } else if (op.kind === 'delete') {
        if (!cur) continue;
        rows.set(op.id, null);
        dirty.set(op.id, ALL_COLUMNS);
        done[i] = true;
      } else {
        if (!cur || cur[VERSION] !== op.version) continue;
        const next = cur.slice();
        const { indexes, mask } = changedColumns(op.mask);
        for (let k = 0; k < indexes.length; k++) next[indexes[k]!] = op.values[k];
        next[VERSION] = op.version + 1;
        rows.set(op.id, next);
        dirty.set(op.id, (dirty.get(op.id) ?? 0) | mask);
        done[i] = true;
      }
    }
    await this.writeRows(client, before, rows, dirty);

    // Events of the writes that applied, in call order.
    const events: EncodedEvent[] = [];
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i]!;
      if (op.kind === 'append') events.push(...op.events);
      else if (done[i]) events.push(op.event);
    }
    const eventIds = events.length > 0 ? await this.insertEvents(client, events) : [];
    let next = 0;
    const stored = (): SessionEvent => decodeEvent(eventIds[next]!, events[next++]!);
    const results = new Array<unknown>(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i]!;
      if (op.kind === 'append') results[i] = op.events.map(stored);
      else if (!done[i]) results[i] = null;
      else if (op.kind === 'update')
        results[i] = { version: op.version + 1, event: stored() } satisfies UpdateResult;
      else results[i] = stored();
    }
    return results;
  }

  /** Writes each session's outcome once: set-based inserts, deletes, and updates grouped by changed columns. */
  private async writeRows(
    client: pg.PoolClient,
    before: Map<string, unknown[]>,
    rows: Map<string, unknown[] | null>,
    dirty: Map<string, number>,
  ): Promise<void> {
    const inserts: unknown[][] = [];
    const deletes: string[] = [];
    const updates = new Map<number, { old: unknown[]; row: unknown[] }[]>();
    for (const [id, mask] of dirty) {
      const old = before.get(id);
      const row = rows.get(id)!;
      if (!old) {
        if (row) inserts.push(row);
      } else if (!row) deletes.push(id);
      else {
        let group = updates.get(mask);
        if (!group) updates.set(mask, (group = []));
        group.push({ old, row });
      }
    }
    const expect = async (q: pg.QueryConfig, n: number): Promise<void> => {
      const res = await client.query(q);
      if (res.rowCount !== n) throw new RaceError();
    };
    if (deletes.length > 0)
      await expect({ name: 'aipd_delete', text: SQL.delete, values: [deletes] }, deletes.length);
    if (inserts.length > 0) {
      const cols: unknown[][] = WRITE_COLUMNS.map(() => []);
      for (const row of inserts) row.forEach((v, c) => cols[c]!.push(v));
      await expect({ name: 'aipd_insert', text: SQL.insert, values: cols }, inserts.length);
    }
    for (const [mask, group] of updates) {
      const { name, text, columns } = this.updateStatement(mask);
      const values: unknown[][] = [[], [], [], ...columns.map(() => [])];
      for (const { old, row } of group) {
        values[0]!.push(row[0]);
        values[1]!.push(old[VERSION]);
        values[2]!.push(row[VERSION]);
        columns.forEach((c, k) => values[k + 3]!.push(row[c]));
      }
      await expect({ name, text, values }, group.length);
    }
  }

  /** Inserts events in order and trims the logs they overfill; their ids, in order. */
  private async insertEvents(client: pg.PoolClient, events: EncodedEvent[]): Promise<number[]> {
    const res = await client.query<unknown[]>({
      name: 'aipd_append_events',
      text: SQL.appendEvents,
      values: [
        events.map((e) => e.session_id),
        events.map((e) => e.type),
        events.map((e) => e.at),
        events.map((e) => e.data),
        this.maxEvents,
      ],
      rowMode: 'array',
    });
    const [ids, overIds, overBy] = res.rows[0]! as [string[], string[] | null, string[] | null];
    if (overIds && overBy) {
      await client.query({ name: 'aipd_trim', text: SQL.trim, values: [overIds, overBy, this.maxEvents] });
    }
    return ids.map(Number);
  }

  /** The named UPDATE that writes one set of columns (WRITE_COLUMNS indexes in `mask`) of many rows at once. */
  private updateStatement(mask: number): { name: string; text: string; columns: number[] } {
    let s = this.updateSql.get(mask);
    if (!s) {
      const columns = WRITE_COLUMNS.map((_, c) => c).filter(
        (c) => c !== 0 && c !== VERSION && (mask & (1 << c)) !== 0,
      );
      const names = columns.map((c) => WRITE_COLUMNS[c]!);
      const sets = [...names.map((c) => `${c} = v.${c}`), 'version = v.version'];
      const arrays = [
        '$1::text[]',
        '$2::integer[]',
        '$3::integer[]',
        ...names.map((c, k) => `$${k + 4}::${typeOf(c)}[]`),
      ];
      const text =
        `UPDATE sessions AS s SET ${sets.join(', ')} ` +
        `FROM unnest(${arrays.join(', ')}) AS v(id, old_version, version${names.map((c) => `, ${c}`).join('')}) ` +
        'WHERE s.id = v.id AND s.version = v.old_version';
      this.updateSql.set(mask, (s = { name: `aipd_write_${mask}`, text, columns }));
    }
    return s;
  }
}

/** A row changed under the flush by a writer outside group commit (its locks should prevent it): run it again. */
class RaceError extends Error {
  constructor() {
    super('a session row changed during a group commit');
  }
}

/** Index of `version` in WRITE_COLUMNS. */
const VERSION = WRITE_COLUMNS.indexOf('version');
/** Every column of WRITE_COLUMNS, as a mask (a replaced row). */
const ALL_COLUMNS = (1 << WRITE_COLUMNS.length) - 1;
const changedCache = new Map<number, { indexes: number[]; mask: number }>();
/** The WRITE_COLUMNS indexes an update of this change mask sets, in `encodeChanges` order, and as a mask. */
function changedColumns(changeMask: number): { indexes: number[]; mask: number } {
  let c = changedCache.get(changeMask);
  if (!c) {
    const indexes = changeColumns(changeMask).map((name) =>
      WRITE_COLUMNS.indexOf(name as (typeof WRITE_COLUMNS)[number]),
    );
    changedCache.set(changeMask, (c = { indexes, mask: indexes.reduce((m, i) => m | (1 << i), 0) }));
  }
  return c;
}

/** A server error about the data of some write (so each write is retried alone), not the connection or server. */
function isDataError(err: unknown): boolean {
  if (!(err instanceof pg.DatabaseError) || typeof err.code !== 'string') return false;
  return !['08', '53', '57', '58', 'XX'].includes(err.code.slice(0, 2));
}

/** Brings the schema to SCHEMA_VERSION in one transaction, under an advisory lock (nodes may open together). */
async function migrate(pool: pg.Pool, progress?: (p: MigrationProgress) => void): Promise<void> {
  const client = await pool.connect();
  let ok = false;
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_meta (key text PRIMARY KEY, value text NOT NULL)');
    const res = await client.query<{ value: string }>('SELECT value FROM schema_meta WHERE key = $1', [
      SCHEMA_VERSION_KEY,
    ]);
    const from = checkSchemaVersion(res.rows[0]?.value);
    if (from < SCHEMA_VERSION) progress?.({ from, to: SCHEMA_VERSION, version: null, ms: null });
    for (let v = from + 1; v <= SCHEMA_VERSION; v++) {
      const t0 = performance.now();
      for (const sql of MIGRATIONS[v - 1]!) await client.query(sql);
      progress?.({ from, to: SCHEMA_VERSION, version: v, ms: performance.now() - t0 });
      await client.query(
        'INSERT INTO schema_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
        [SCHEMA_VERSION_KEY, String(v)],
      );
    }
    await client.query('COMMIT');
    ok = true;
  } finally {
    if (!ok) await client.query('ROLLBACK').catch(() => {});
    client.release();
  }
}
