/**
 * Turns a closed SQLite store file back into an older schema version, as the older code made it, so that tests
 * can open it with this code and check the migration.
 */
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../src/state/sqlite-schema.js';

/** Version 1's `sessions` table and its indexes, as version 1 (and 2) made them. */
const SESSIONS_V1 = MIGRATIONS[0]!.filter((sql) =>
  /^CREATE TABLE sessions \(|^CREATE INDEX \w+ ON sessions /.test(sql),
);

/**
 * Version 3 → 2: `checkpoint`, `updated_at` and `version` back in the `sessions` rows, in their places (the table
 * rebuilt with version 1's statement), and no `session_progress`.
 */
export function downgradeToVersion2(path: string): void {
  const db = new Database(path);
  try {
    db.pragma('foreign_keys = OFF');
    // So that renaming `sessions` does not rewrite `session_tasks`' reference to it.
    db.pragma('legacy_alter_table = ON');
    db.transaction(() => {
      db.exec('ALTER TABLE sessions RENAME TO sessions_v3');
      db.exec(SESSIONS_V1[0]!);
      db.exec(`
        INSERT INTO sessions (id, agent_id, session_type, status, context, checkpoint, runtime_backend,
          runtime_metadata, created_at, updated_at, status_history, managed_by, version, task_name, requester, executor)
        SELECT s.id, s.agent_id, s.session_type, s.status, s.context, p.checkpoint, s.runtime_backend,
          s.runtime_metadata, s.created_at, p.updated_at, s.status_history, s.managed_by, p.version, s.task_name,
          s.requester, s.executor
        FROM sessions_v3 s JOIN session_progress p ON p.id = s.id;
        DROP TABLE session_progress;
        DROP TABLE sessions_v3;
      `);
      for (const sql of SESSIONS_V1.slice(1)) db.exec(sql);
      db.prepare("UPDATE schema_meta SET value = '2' WHERE key = 'schema_version'").run();
    })();
  } finally {
    db.close();
  }
}
