/**
 * The SQLite store's event ids: the log is a plain rowid table (schema version 2), so a commit writes no
 * `sqlite_sequence` page; the store gives the ids itself and never gives one twice; and a version 1 file (the log
 * under AUTOINCREMENT) is migrated with its events, ids and counter kept.
 */
import Database from 'better-sqlite3';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SQLITE_SCHEMA_VERSION } from '../../src/state/sqlite-schema.js';
import { SqliteSessionStore } from '../../src/state/sqlite-session-store.js';
import { downgradeToVersion2 } from '../helpers/sqlite-downgrade.js';
import { sqliteStores } from '../helpers/sqlite-stores.js';
import { sessionEvent, sessionRecord } from './session-store-suite.js';

const dir = mkdtempSync(join(tmpdir(), 'aipd-sqlite-ids-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const newPath = (): string => join(dir, `ids-${++files}.db`);

/** What the file says, read with a connection of its own (the store closed). */
function inspect(path: string): { version: string; eventsSql: string; sequenceRows: number; floor: unknown } {
  const db = new Database(path, { readonly: true });
  try {
    const pluck = (sql: string): unknown => db.prepare(sql).pluck().get();
    const hasSequence = pluck("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'") === 1;
    return {
      version: pluck("SELECT value FROM schema_meta WHERE key = 'schema_version'") as string,
      eventsSql: pluck("SELECT sql FROM sqlite_master WHERE name = 'session_events'") as string,
      sequenceRows: hasSequence
        ? (pluck("SELECT count(*) FROM sqlite_sequence WHERE name = 'session_events'") as number)
        : 0,
      floor: pluck("SELECT value FROM schema_meta WHERE key = 'event_id_floor'") ?? null,
    };
  } finally {
    db.close();
  }
}

/** Turns a closed file back into what version 1 made: the log under AUTOINCREMENT, its counter at `seq`. */
function downgradeToVersion1(path: string, seq: number): void {
  downgradeToVersion2(path);
  const db = new Database(path);
  db.exec(`
    CREATE TABLE session_events_v1 (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      session_id TEXT NOT NULL,
      type TEXT NOT NULL,
      at TEXT NOT NULL,
      data TEXT NOT NULL
    ) STRICT;
    INSERT INTO session_events_v1 SELECT id, session_id, type, at, data FROM session_events ORDER BY id;
    DROP TABLE session_events;
    ALTER TABLE session_events_v1 RENAME TO session_events;
    UPDATE schema_meta SET value = '1' WHERE key = 'schema_version';
    DELETE FROM schema_meta WHERE key = 'event_id_floor';
  `);
  db.prepare("UPDATE sqlite_sequence SET seq = CAST(? AS INTEGER) WHERE name = 'session_events'").run(seq);
  db.close();
}

describe('SQLite event ids', () => {
  const { openStore, closeStore, closeAll } = sqliteStores();
  afterEach(closeAll);

  it('keeps the log as a plain rowid table: commits write no sqlite_sequence row', async () => {
    const path = newPath();
    const s = await openStore(path);
    await s.create(sessionRecord('a'), sessionEvent('a', 'session.created'));
    const events = await s.appendEvents([sessionEvent('a', 'x'), sessionEvent('a', 'y')]);
    expect(events.map((e) => e.id)).toEqual([2, 3]);
    await closeStore(s);
    const file = inspect(path);
    expect(file.version).toBe(String(SQLITE_SCHEMA_VERSION));
    expect(file.eventsSql).toMatch(/id INTEGER PRIMARY KEY,/);
    expect(file.eventsSql).not.toMatch(/AUTOINCREMENT/i);
    expect(file.sequenceRows).toBe(0);
  });

  it('gives the next id after trimming, a session delete and reopening', async () => {
    const path = newPath();
    const s = await openStore(path, { maxEventsPerSession: 2 });
    await s.create(sessionRecord('a'), sessionEvent('a', 'session.created'));
    await s.create(sessionRecord('b'), sessionEvent('b', 'session.created'));
    const a = await s.appendEvents([1, 2, 3, 4].map((n) => sessionEvent('a', 'x', { n })));
    const gone = await s.delete('b', sessionEvent('b', 'session.deleted'));
    // a's log is trimmed to its newest two; b's row is gone, its log stays.
    expect((await s.events('a', 0, 10)).map((e) => e.id)).toEqual([a[2]!.id, a[3]!.id]);
    await closeStore(s);
    const again = await openStore(path);
    const [next] = await again.appendEvents([sessionEvent('a', 'y')]);
    expect(next!.id).toBe(gone!.id + 1);
  });

  it('migrates a version 1 file: events and ids kept, the counter kept as the floor, the log indexed as before', async () => {
    const path = newPath();
    const s = await openStore(path);
    await s.create(sessionRecord('a'), sessionEvent('a', 'session.created'));
    await s.appendEvents([sessionEvent('a', 'x', { n: 1 }), sessionEvent('a', 'x', { n: 2 })]);
    const before = await s.allEvents(0, 100);
    const newest = before.at(-1)!.id;
    await closeStore(s);
    // Version 1's counter could stand past the newest id (it was never below it); the migration keeps it.
    downgradeToVersion1(path, newest + 10);
    expect(inspect(path)).toMatchObject({ version: '1', sequenceRows: 1 });
    expect(inspect(path).eventsSql).toMatch(/AUTOINCREMENT/);

    const migrated = await openStore(path);
    expect(await migrated.allEvents(0, 100)).toEqual(before);
    expect(await migrated.events('a', 0, 100)).toEqual(before);
    const [next] = await migrated.appendEvents([sessionEvent('a', 'x', { n: 3 })]);
    expect(next!.id).toBe(newest + 11);
    expect((await migrated.events('a', 0, 100)).map((e) => e.id)).toEqual([
      ...before.map((e) => e.id),
      newest + 11,
    ]);
    await closeStore(migrated);
    const file = inspect(path);
    expect(file).toMatchObject({
      version: String(SQLITE_SCHEMA_VERSION),
      sequenceRows: 0,
      floor: String(newest + 10),
    });
    expect(file.eventsSql).not.toMatch(/AUTOINCREMENT/i);

    // Reopened, the ids go on from the newest given.
    const third = await openStore(path);
    const [after] = await third.appendEvents([sessionEvent('a', 'x', { n: 4 })]);
    expect(after!.id).toBe(newest + 12);
  });

  it('gives the next id after a crash that left the log mark behind (the newest id read from the log)', async () => {
    const path = newPath();
    const s = await openStore(path);
    const events = await s.appendEvents([1, 2, 3].map((n) => sessionEvent('a', 'x', { n })));
    // What kill -9 would leave: the file and its WAL as they are, no close.
    const copy = newPath();
    copyFileSync(path, copy);
    copyFileSync(`${path}-wal`, `${copy}-wal`);
    const db = new Database(copy);
    expect(db.prepare('SELECT indexed FROM session_log_mark').pluck().get()).toBeLessThan(events[2]!.id);
    db.close();
    const after = await openStore(copy);
    const [next] = await after.appendEvents([sessionEvent('a', 'y')]);
    expect(next!.id).toBe(events[2]!.id + 1);
  });

  it('migrates a version 1 file whose log is empty but whose counter is not: ids go on past the counter', async () => {
    const path = newPath();
    const s = await openStore(path);
    const events = await s.appendEvents([sessionEvent('a', 'x'), sessionEvent('a', 'y')]);
    await closeStore(s);
    downgradeToVersion1(path, events[1]!.id);
    // The log emptied by hand and the mark put back: only the counter remembers the ids given.
    const db = new Database(path);
    db.exec('DELETE FROM session_events; DELETE FROM session_log_index; DELETE FROM session_logs;');
    db.exec('UPDATE session_log_mark SET indexed = 0');
    db.close();
    const migrated = await openStore(path);
    const [next] = await migrated.appendEvents([sessionEvent('a', 'z')]);
    expect(next!.id).toBe(events[1]!.id + 1);
    await closeStore(migrated);
    expect(inspect(path).floor).toBe(String(events[1]!.id));
  });

  it('migrates a version 1 file whose counter is at the newest id without writing a floor', async () => {
    const path = newPath();
    const s = await openStore(path);
    const [e] = await s.appendEvents([sessionEvent('a', 'x')]);
    await closeStore(s);
    downgradeToVersion1(path, e!.id);
    const migrated = await openStore(path);
    const [next] = await migrated.appendEvents([sessionEvent('a', 'y')]);
    expect(next!.id).toBe(e!.id + 1);
    await closeStore(migrated);
    expect(inspect(path).floor).toBeNull();
  });

  it('refuses a maxEventsPerSession below 1 (trimming must keep the newest id)', () => {
    expect(() => new SqliteSessionStore({ path: newPath(), maxEventsPerSession: 0 })).toThrow(
      'maxEventsPerSession must be a positive integer, got 0',
    );
  });
});
