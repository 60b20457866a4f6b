/**
 * The SQLite store's `session_progress` table (schema version 3): what every task step writes (checkpoint,
 * updated_at, version) is out of the `sessions` rows, so a step's update does not write its `sessions` row; a
 * version 2 file is migrated with every record kept.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SQLITE_SCHEMA_VERSION } from '../../src/state/sqlite-schema.js';
import { downgradeToVersion2 } from '../helpers/sqlite-downgrade.js';
import { sqliteStores } from '../helpers/sqlite-stores.js';
import { sessionEvent, sessionRecord, taskFields } from './session-store-suite.js';

const dir = mkdtempSync(join(tmpdir(), 'aipd-sqlite-progress-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const newPath = (): string => join(dir, `progress-${++files}.db`);

/** Runs `fn` on a connection of its own to the (closed) file. */
function raw<T>(path: string, fn: (db: Database.Database) => T): T {
  const db = new Database(path);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}
const columns = (db: Database.Database, table: string): string[] =>
  (db.prepare(`SELECT name FROM pragma_table_info('${table}')`).pluck().all() as string[]).sort();

describe('SQLite session_progress', () => {
  const { openStore, closeStore, closeAll } = sqliteStores();
  afterEach(closeAll);

  it('writes a checkpoint update to session_progress alone, and a status change to the sessions row too', async () => {
    const path = newPath();
    const s = await openStore(path);
    await s.create(sessionRecord('a'), sessionEvent('a', 'session.created'));
    await closeStore(s);
    // A trigger of the file's own counts the writes to `sessions` rows.
    raw(path, (db) =>
      db.exec(`
        CREATE TABLE row_writes (n INTEGER NOT NULL);
        INSERT INTO row_writes VALUES (0);
        CREATE TRIGGER count_row_writes AFTER UPDATE ON sessions BEGIN UPDATE row_writes SET n = n + 1; END;
      `),
    );
    const again = await openStore(path);
    const at = (n: number): string => `2026-01-01T00:00:0${n}.000Z`;
    for (let v = 0; v < 3; v++)
      expect(
        await again.update(
          'a',
          v,
          { checkpoint: { aip_steps: v + 1 }, updated_at: at(v + 1) },
          sessionEvent('a'),
        ),
      ).toMatchObject({ version: v + 1 });
    expect(await again.update('a', 0, { checkpoint: { aip_steps: 9 } }, sessionEvent('a'))).toBeNull();
    const afterSteps = raw(path, (db) => db.prepare('SELECT n FROM row_writes').pluck().get());
    expect(afterSteps).toBe(0);
    const history = [...sessionRecord('a').status_history, { status: 'paused' as const, at: at(5) }];
    expect(
      await again.update(
        'a',
        3,
        { status: 'paused', status_history: history, updated_at: at(5) },
        sessionEvent('a'),
      ),
    ).toMatchObject({ version: 4 });
    expect(raw(path, (db) => db.prepare('SELECT n FROM row_writes').pluck().get())).toBe(1);
    expect(await again.get('a')).toEqual({
      ...sessionRecord('a'),
      status: 'paused',
      status_history: history,
      checkpoint: { aip_steps: 3 },
      updated_at: at(5),
      version: 4,
    });
  });

  it('migrates a version 2 file: every record kept, the step fields moved out of the sessions rows', async () => {
    const path = newPath();
    const s = await openStore(path);
    const task = taskFields({ state: 'running' });
    await s.create(sessionRecord('a', { task, managed_by: 'node-1' }), sessionEvent('a', 'session.created'));
    await s.create(sessionRecord('b', { created_at: '2026-01-01T00:00:01.000Z' }), sessionEvent('b'));
    await s.update(
      'a',
      0,
      { checkpoint: { aip_steps: 4 }, updated_at: '2026-01-01T00:00:02.000Z' },
      sessionEvent('a'),
    );
    const before = [await s.get('a'), await s.get('b')];
    const listed = await s.list({}, { limit: 10 });
    await closeStore(s);

    downgradeToVersion2(path);
    raw(path, (db) => {
      expect(db.prepare("SELECT value FROM schema_meta WHERE key = 'schema_version'").pluck().get()).toBe(
        '2',
      );
      expect(columns(db, 'sessions')).toEqual(
        expect.arrayContaining(['checkpoint', 'updated_at', 'version']),
      );
      expect(
        db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'session_progress'").pluck().get(),
      ).toBe(0);
    });

    const migrated = await openStore(path);
    expect([await migrated.get('a'), await migrated.get('b')]).toEqual(before);
    expect(await migrated.list({}, { limit: 10 })).toEqual(listed);
    expect(await migrated.list({ updated_after: '2026-01-01T00:00:01.000Z' }, { limit: 10 })).toMatchObject({
      items: [{ id: 'a' }],
    });
    // The version guard holds across the migration, and a delete takes the progress row with it.
    expect(await migrated.update('a', 0, { checkpoint: null }, sessionEvent('a'))).toBeNull();
    expect(await migrated.update('a', 1, { checkpoint: null }, sessionEvent('a'))).toMatchObject({
      version: 2,
    });
    expect(await migrated.delete('b', sessionEvent('b', 'session.deleted'))).not.toBeNull();
    await closeStore(migrated);
    raw(path, (db) => {
      expect(db.prepare("SELECT value FROM schema_meta WHERE key = 'schema_version'").pluck().get()).toBe(
        String(SQLITE_SCHEMA_VERSION),
      );
      expect(columns(db, 'sessions')).not.toEqual(expect.arrayContaining(['checkpoint']));
      expect(columns(db, 'sessions').filter((c) => ['updated_at', 'version'].includes(c))).toEqual([]);
      expect(db.prepare('SELECT id, version FROM session_progress').all()).toEqual([{ id: 'a', version: 2 }]);
    });
  });
});
