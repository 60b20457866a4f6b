/**
 * The SQLite store's file format: its schema, one list of statements per version, and the migration that brings a
 * file to the newest at open. SQLite has its own schema version (PostgreSQL's is `SCHEMA_VERSION` in
 * sql-schema.ts), so a change to one file format does not make the other's older nodes refuse their database.
 */
import type Database from 'better-sqlite3';
import { performance } from 'node:perf_hooks';
import {
  SCHEMA_VERSION_KEY,
  SESSION_INDEXES_V1,
  checkSchemaVersion,
  type MigrationProgress,
} from './sql-schema.js';

/** The SQLite file's schema version (PostgreSQL has its own, `SCHEMA_VERSION`); a newer file is refused. */
export const SQLITE_SCHEMA_VERSION = 3;

/** The `schema_meta` key of the lowest event id past which new ids are given (migration 2), if any. */
export const EVENT_ID_FLOOR_KEY = 'event_id_floor';

/** The schema, one list of statements per version (index 0 makes version 1; tests rebuild older files from it). */
export const MIGRATIONS: readonly (readonly string[])[] = [
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
      managed_by TEXT,
      version INTEGER NOT NULL,
      task_name TEXT,
      requester TEXT,
      executor TEXT
    ) STRICT`,
    ...SESSION_INDEXES_V1,
    // The `task` JSON of a task session (with its plan request, often 50-100 KB), out of the hot row; no row for
    // a session whose task is null. Written only by the writes that give `task`.
    `CREATE TABLE session_tasks (
      id TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
      task TEXT NOT NULL
    ) STRICT`,
    `CREATE TABLE session_events (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      session_id TEXT NOT NULL,
      type TEXT NOT NULL,
      at TEXT NOT NULL,
      data TEXT NOT NULL
    ) STRICT`,
    // Each session's log (see "Event logs" above): all the events up to `session_log_mark.indexed`, and some after.
    `CREATE TABLE session_log_index (
      session_id TEXT NOT NULL,
      id INTEGER NOT NULL,
      PRIMARY KEY (session_id, id)
    ) STRICT, WITHOUT ROWID`,
    // Indexed events in each session's log, so trimming deletes exactly the surplus.
    'CREATE TABLE session_logs (session_id TEXT PRIMARY KEY, events INTEGER NOT NULL) STRICT, WITHOUT ROWID',
    'CREATE TABLE session_log_mark (indexed INTEGER NOT NULL) STRICT',
    'INSERT INTO session_log_mark (indexed) VALUES (0)',
  ],
  // 2: the event log without AUTOINCREMENT (see the header), ids and rows kept as they are. Should its counter
  // ever have been past the newest id, that is kept as the floor of the ids given from now on.
  [
    `CREATE TABLE session_events_v2 (
      id INTEGER PRIMARY KEY,
      session_id TEXT NOT NULL,
      type TEXT NOT NULL,
      at TEXT NOT NULL,
      data TEXT NOT NULL
    ) STRICT`,
    'INSERT INTO session_events_v2 (id, session_id, type, at, data) SELECT id, session_id, type, at, data FROM session_events ORDER BY id',
    `INSERT INTO schema_meta (key, value) SELECT '${EVENT_ID_FLOOR_KEY}', CAST(CAST(seq AS INTEGER) AS TEXT) FROM sqlite_sequence
      WHERE name = 'session_events' AND seq > (SELECT coalesce(max(id), 0) FROM session_events)`,
    'DROP TABLE session_events',
    'ALTER TABLE session_events_v2 RENAME TO session_events',
  ],
  // 3: what every task step writes (checkpoint, updated_at, version) in a narrow table of its own, out of the
  // `sessions` rows (see sqlite-statements.ts); the values are moved, and the columns dropped from `sessions`.
  [
    `CREATE TABLE session_progress (
      id TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
      checkpoint TEXT,
      updated_at TEXT NOT NULL,
      version INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID`,
    'INSERT INTO session_progress (id, checkpoint, updated_at, version) SELECT id, checkpoint, updated_at, version FROM sessions',
    'ALTER TABLE sessions DROP COLUMN checkpoint',
    'ALTER TABLE sessions DROP COLUMN updated_at',
    'ALTER TABLE sessions DROP COLUMN version',
  ],
];
if (MIGRATIONS.length !== SQLITE_SCHEMA_VERSION)
  throw new Error('sqlite migrations and SQLITE_SCHEMA_VERSION disagree');

/** The database's schema version (0 for a new one); throws for one newer than this code. */
export function schemaVersion(db: Database.Database): number {
  const meta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_meta'").get();
  if (!meta) return 0;
  const row = db.prepare('SELECT value FROM schema_meta WHERE key = ?').get(SCHEMA_VERSION_KEY) as
    { value: string } | undefined;
  return checkSchemaVersion(row?.value, SQLITE_SCHEMA_VERSION);
}

/** Brings the schema to SQLITE_SCHEMA_VERSION, in one transaction that holds the write lock; tells `progress`. */
export function migrate(db: Database.Database, progress?: (p: MigrationProgress) => void): void {
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS schema_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT');
    const from = schemaVersion(db);
    const to = SQLITE_SCHEMA_VERSION;
    if (from < to) progress?.({ from, to, version: null, ms: null });
    for (let v = from + 1; v <= to; v++) {
      const t0 = performance.now();
      for (const sql of MIGRATIONS[v - 1]!) db.exec(sql);
      progress?.({ from, to, version: v, ms: performance.now() - t0 });
      db.prepare(
        'INSERT INTO schema_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ).run(SCHEMA_VERSION_KEY, String(v));
    }
  }).immediate();
}
