/**
 * The PostgreSQL store's schema (see "Types" and "Indexes" in postgres-session-store.ts): one list of statements
 * per version, and the migration that brings a database to SCHEMA_VERSION at open.
 */
import type pg from 'pg';
import {
  SCHEMA_VERSION,
  SCHEMA_VERSION_KEY,
  SESSION_INDEXES_V1,
  checkSchemaVersion,
  type MigrationProgress,
} from './sql-schema.js';

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

/** The advisory lock key of migrations at open (commits hold another: EVENTS_LOCK, postgres-session-store.ts). */
const MIGRATION_LOCK = 7_301_990_001;

/** Brings the schema to SCHEMA_VERSION in one transaction, under an advisory lock (nodes may open together). */
export async function migrate(pool: pg.Pool, progress?: (p: MigrationProgress) => void): Promise<void> {
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
