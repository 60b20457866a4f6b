/**
 * The SQLite session store (better-sqlite3): one database file in WAL mode, session rows with their filterable
 * fields as columns and the rest as JSON text, and an append-only event log whose ids only grow (AUTOINCREMENT:
 * never reused, even after deletes).
 *
 * Durability. `synchronous=NORMAL` (the default here) in WAL mode: a commit is written to the WAL with write(2) but
 * not fsync'd; the WAL is fsync'd at each checkpoint (every ~4 MB of WAL, `wal_autocheckpoint`). So a resolved
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
 * loop. An awaited write on an otherwise idle store therefore takes about `groupCommitMs`; 0 trades batching
 * for latency.
 *
 * Read-your-writes. Reads (`get`, `list`, `events`, `allEvents`) first commit whatever is queued, synchronously
 * (better-sqlite3 is synchronous, so nothing can slip in between), and then read committed state: a read issued
 * after a write was called sees it, even when nobody awaited the write.
 *
 * Event logs are trimmed to `maxEventsPerSession` (the oldest go) in the transaction that grows them; a per-session
 * count (`session_logs`) makes that a delete of exactly the surplus, with no scan of the log.
 */
import Database from 'better-sqlite3';
import { GroupCommit } from './group-commit.js';
import type { SessionRecord } from './session-model.js';
import type {
  NewEvent,
  Page,
  PageRequest,
  SessionChanges,
  SessionEvent,
  SessionFilter,
  SessionStore,
} from './session-store.js';
import {
  READ_COLUMNS,
  SCHEMA_VERSION,
  SCHEMA_VERSION_KEY,
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
} from './sql-schema.js';

export interface SqliteSessionStoreOptions {
  /** The database file (created if missing); ':memory:' for a private in-memory database (tests). */
  readonly path: string;
  /** Events kept per session; the oldest go first. Default 10,000. */
  readonly maxEventsPerSession?: number;
  /** Longest a write waits for others to share its transaction. Default 2; 0 commits on the next setImmediate. */
  readonly groupCommitMs?: number;
  /** `normal` (default): durable across process death; `full`: also across power loss (see above). */
  readonly synchronous?: 'normal' | 'full';
}

/** The schema, one list of statements per version (index 0 makes version 1). */
const MIGRATIONS: readonly (readonly string[])[] = [
  [
    `CREATE TABLE sessions (
      id TEXT PRIMARY KEY,
      agent_id TEXT NOT NULL,
      session_type TEXT NOT NULL,
      status TEXT NOT NULL,
      context TEXT NOT NULL,
      checkpoint TEXT,
      runtime_backend TEXT NOT NULL,
      runtime_metadata TEXT NOT NULL,
      created_at TEXT NOT NULL,
      updated_at TEXT NOT NULL,
      status_history TEXT NOT NULL,
      task TEXT,
      managed_by TEXT,
      version INTEGER NOT NULL,
      task_name TEXT,
      requester TEXT,
      executor TEXT
    ) STRICT`,
    'CREATE INDEX sessions_created ON sessions (created_at DESC, id DESC)',
    'CREATE INDEX sessions_agent ON sessions (agent_id, created_at DESC, id DESC)',
    'CREATE INDEX sessions_type ON sessions (session_type, created_at DESC, id DESC)',
    'CREATE INDEX sessions_status ON sessions (status, created_at DESC, id DESC)',
    'CREATE INDEX sessions_updated ON sessions (updated_at)',
    'CREATE INDEX sessions_managed ON sessions (managed_by, created_at DESC, id DESC) WHERE managed_by IS NOT NULL',
    'CREATE INDEX sessions_requester ON sessions (requester, created_at DESC, id DESC) WHERE requester IS NOT NULL',
    'CREATE INDEX sessions_executor ON sessions (executor, created_at DESC, id DESC) WHERE executor IS NOT NULL',
    'CREATE INDEX sessions_task_name ON sessions (task_name, created_at DESC, id DESC) WHERE task_name IS NOT NULL',
    `CREATE TABLE session_events (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      session_id TEXT NOT NULL,
      type TEXT NOT NULL,
      at TEXT NOT NULL,
      data TEXT NOT NULL
    ) STRICT`,
    'CREATE INDEX session_events_session ON session_events (session_id, id)',
    // Events in each session's log, so trimming deletes exactly the surplus.
    'CREATE TABLE session_logs (session_id TEXT PRIMARY KEY, events INTEGER NOT NULL) STRICT, WITHOUT ROWID',
  ],
];
if (MIGRATIONS.length !== SCHEMA_VERSION) throw new Error('sqlite migrations and SCHEMA_VERSION disagree');

/** Rows per multi-row event insert, largest first (a batch of n is split into these sizes). */
const EVENT_CHUNKS = [128, 64, 32, 16, 8, 4, 2, 1] as const;
const EVENT_COLUMNS = 'id, session_id, type, at, data';

/** Writes per transaction at most: a commit blocks the event loop (better-sqlite3 is synchronous), ~25 µs a write. */
const MAX_BATCH = 1_000;

type Settle = { resolve: (v: unknown) => void; reject: (err: unknown) => void };
type Op = Settle &
  (
    | { kind: 'create'; params: unknown[]; event: EncodedEvent }
    | { kind: 'update'; id: string; version: number; mask: number; values: unknown[]; event: EncodedEvent }
    | { kind: 'delete'; id: string; event: EncodedEvent }
    | { kind: 'append'; events: EncodedEvent[] }
  );

interface Statements {
  insert: Database.Statement;
  delete: Database.Statement;
  get: Database.Statement;
  seq: Database.Statement;
  events: Database.Statement;
  allEvents: Database.Statement;
  countLog: Database.Statement;
  trimLog: Database.Statement;
  setLog: Database.Statement;
  insertEvents: Map<number, Database.Statement>;
}

export class SqliteSessionStore implements SessionStore {
  private db: Database.Database | null = null;
  private st: Statements | null = null;
  private readonly updates = new Map<number, Database.Statement>();
  private readonly lists = new Map<string, Database.Statement>();
  private readonly queue: GroupCommit<Op>;
  private readonly maxEvents: number;
  private tx: ((batch: Op[]) => unknown[]) | null = null;

  constructor(private readonly opts: SqliteSessionStoreOptions) {
    this.maxEvents = opts.maxEventsPerSession ?? 10_000;
    this.queue = new GroupCommit<Op>(opts.groupCommitMs ?? 2, (batch) => this.commit(batch), MAX_BATCH);
  }

  open(): Promise<void> {
    if (this.db) return Promise.resolve();
    let db: Database.Database | null = null;
    try {
      db = new Database(this.opts.path);
      db.pragma('busy_timeout = 5000');
      // Refuse a newer schema before changing anything in the file.
      schemaVersion(db);
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.opts.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      db.pragma('journal_size_limit = 67108864');
      db.pragma('cache_size = -32000');
      migrate(db);
      this.st = prepare(db);
      const run = db.transaction((batch: Op[]) => this.apply(batch));
      this.tx = (batch) => run.immediate(batch);
      this.db = db;
      return Promise.resolve();
    } catch (err) {
      db?.close();
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  close(): Promise<void> {
    if (!this.db) return Promise.resolve();
    this.queue.drainSync();
    try {
      this.db.pragma('optimize');
    } catch {
      // only planner statistics
    }
    this.db.close();
    this.db = this.st = this.tx = null;
    this.updates.clear();
    this.lists.clear();
    return Promise.resolve();
  }

  create(record: SessionRecord, event: NewEvent): Promise<SessionEvent | null> {
    return this.enqueue((s) => ({
      kind: 'create',
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
  ): Promise<{ record: SessionRecord; event: SessionEvent } | null> {
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

  get(id: string): Promise<SessionRecord | null> {
    return this.read((st) => {
      const row = st.get.get(id) as unknown[] | undefined;
      return row ? rowToRecord(row) : null;
    });
  }

  list(filter: SessionFilter, page: PageRequest): Promise<Page> {
    return this.read(() => {
      const q = listQuery(filter, page, () => '?');
      let stmt = this.lists.get(q.shape);
      if (!stmt) {
        stmt = this.db!.prepare(q.sql).raw(true);
        if (this.lists.size < 256) this.lists.set(q.shape, stmt);
      }
      return pageOf(stmt.all(...q.params) as unknown[][], page.limit);
    });
  }

  events(sessionId: string, after: number, limit: number): Promise<SessionEvent[]> {
    return this.read((st) => (st.events.all(sessionId, after, limit) as unknown[][]).map(rowToEvent));
  }

  allEvents(after: number, limit: number): Promise<SessionEvent[]> {
    return this.read((st) => (st.allEvents.all(after, limit) as unknown[][]).map(rowToEvent));
  }

  /** Queues a write built from its settle functions (built at call time: what the caller changes later is not ours). */
  private enqueue<T>(make: (s: Settle) => Op): Promise<T> {
    if (!this.db) return Promise.reject(new Error('session store is not open'));
    return new Promise<T>((resolve, reject) => {
      this.queue.add(make({ resolve: resolve as (v: unknown) => void, reject }));
    });
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

  /** Commits a batch in one transaction and settles its ops in order; on an error, each op on its own. */
  private commit(batch: Op[]): void {
    let results: unknown[];
    try {
      if (!this.tx) throw new Error('session store is closed');
      results = this.tx(batch);
    } catch (err) {
      if (batch.length > 1 && this.tx) for (const op of batch) this.commit([op]);
      else for (const op of batch) op.reject(err);
      return;
    }
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]);
  }

  /** The body of a batch's transaction: each op in order, then its events in bulk, then trimming. */
  private apply(batch: Op[]): unknown[] {
    const st = this.st!;
    let nextId = ((st.seq.get() as unknown[] | undefined)?.[0] as number | undefined) ?? 0;
    const rows: unknown[] = [];
    const added = new Map<string, number>();
    const results = new Array<unknown>(batch.length);
    const log = (e: EncodedEvent): SessionEvent => {
      const id = ++nextId;
      rows.push(id, e.session_id, e.type, e.at, e.data);
      added.set(e.session_id, (added.get(e.session_id) ?? 0) + 1);
      return decodeEvent(id, e);
    };
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i]!;
      switch (op.kind) {
        case 'create':
          results[i] = st.insert.run(...op.params).changes === 1 ? log(op.event) : null;
          break;
        case 'update': {
          const row = this.updateStatement(op.mask).get(...op.values, op.id, op.version) as
            unknown[] | undefined;
          results[i] = row ? { record: rowToRecord(row), event: log(op.event) } : null;
          break;
        }
        case 'delete':
          results[i] = st.delete.run(op.id).changes === 1 ? log(op.event) : null;
          break;
        case 'append':
          results[i] = op.events.map(log);
          break;
      }
    }
    this.insertEvents(rows);
    for (const [sessionId, n] of added) {
      const count = (st.countLog.get(sessionId, n) as unknown[])[0] as number;
      if (count > this.maxEvents) {
        st.trimLog.run(sessionId, count - this.maxEvents);
        st.setLog.run(this.maxEvents, sessionId);
      }
    }
    return results;
  }

  /** Inserts event rows (5 values each) with as few multi-row statements as the chunk sizes allow. */
  private insertEvents(rows: unknown[]): void {
    const st = this.st!;
    let at = 0;
    let left = rows.length / 5;
    while (left > 0) {
      const n = EVENT_CHUNKS.find((c) => c <= left)!;
      let stmt = st.insertEvents.get(n);
      if (!stmt) {
        const values = Array.from({ length: n }, () => '(?, ?, ?, ?, ?)').join(', ');
        stmt = this.db!.prepare(`INSERT INTO session_events (${EVENT_COLUMNS}) VALUES ${values}`);
        st.insertEvents.set(n, stmt);
      }
      stmt.run(n * 5 === rows.length ? rows : rows.slice(at, at + n * 5));
      at += n * 5;
      left -= n;
    }
  }

  /** The prepared UPDATE for one set of changed fields (cached per mask). */
  private updateStatement(mask: number): Database.Statement {
    let stmt = this.updates.get(mask);
    if (!stmt) {
      const sets = changeColumns(mask).map((c) => `${c} = ?`);
      sets.push('version = version + 1');
      stmt = this.db!.prepare(
        `UPDATE sessions SET ${sets.join(', ')} WHERE id = ? AND version = ? RETURNING ${READ_COLUMNS.join(', ')}`,
      ).raw(true);
      this.updates.set(mask, stmt);
    }
    return stmt;
  }
}

/** The database's schema version (0 for a new one); throws for one newer than this code. */
function schemaVersion(db: Database.Database): number {
  const meta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_meta'").get();
  if (!meta) return 0;
  const row = db.prepare('SELECT value FROM schema_meta WHERE key = ?').get(SCHEMA_VERSION_KEY) as
    { value: string } | undefined;
  return checkSchemaVersion(row?.value);
}

/** Brings the schema to SCHEMA_VERSION, in one transaction that holds the write lock. */
function migrate(db: Database.Database): void {
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS schema_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT');
    const from = schemaVersion(db);
    for (let v = from + 1; v <= SCHEMA_VERSION; v++) {
      for (const sql of MIGRATIONS[v - 1]!) db.exec(sql);
      db.prepare(
        'INSERT INTO schema_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ).run(SCHEMA_VERSION_KEY, String(v));
    }
  }).immediate();
}

function prepare(db: Database.Database): Statements {
  const placeholders = WRITE_COLUMNS.map(() => '?').join(', ');
  return {
    insert: db.prepare(
      `INSERT INTO sessions (${WRITE_COLUMNS.join(', ')}) VALUES (${placeholders}) ON CONFLICT (id) DO NOTHING`,
    ),
    delete: db.prepare('DELETE FROM sessions WHERE id = ?'),
    get: db.prepare(`SELECT ${READ_COLUMNS.join(', ')} FROM sessions WHERE id = ?`).raw(true),
    seq: db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'session_events'").raw(true),
    events: db
      .prepare(
        `SELECT ${EVENT_COLUMNS} FROM session_events WHERE session_id = ? AND id > ? ORDER BY id LIMIT ?`,
      )
      .raw(true),
    allEvents: db
      .prepare(`SELECT ${EVENT_COLUMNS} FROM session_events WHERE id > ? ORDER BY id LIMIT ?`)
      .raw(true),
    countLog: db
      .prepare(
        'INSERT INTO session_logs (session_id, events) VALUES (?, ?) ' +
          'ON CONFLICT (session_id) DO UPDATE SET events = events + excluded.events RETURNING events',
      )
      .raw(true),
    trimLog: db.prepare(
      'DELETE FROM session_events WHERE id IN (SELECT id FROM session_events WHERE session_id = ? ORDER BY id LIMIT ?)',
    ),
    setLog: db.prepare('UPDATE session_logs SET events = ? WHERE session_id = ?'),
    insertEvents: new Map(),
  };
}
