/**
 * Schema migrations tell their progress (`onMigration`), and the server logs an upgrade as it starts and as each
 * version is applied: on a large database a migration can hold the start for minutes, and an operator must see why.
 * SQLite (a file taken back to version 2) and PostgreSQL (a new database), and the server's log lines from a real
 * start on an old SQLite file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SQLITE_FILE } from '../../src/app/store.js';
import { startServer } from '../../src/app/server.js';
import { PostgresSessionStore } from '../../src/state/postgres-session-store.js';
import { SQLITE_SCHEMA_VERSION } from '../../src/state/sqlite-schema.js';
import { SqliteSessionStore } from '../../src/state/sqlite-session-store.js';
import type { SessionStore } from '../../src/state/session-store.js';
import { SCHEMA_VERSION, type MigrationProgress } from '../../src/state/sql-schema.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { downgradeToVersion2 } from '../helpers/sqlite-downgrade.js';
import { sessionEvent, sessionRecord } from './session-store-suite.js';

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'aipd-migration-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The `version` of each progress report in `seen` (null for the start). */
const applied = (seen: MigrationProgress[]): (number | null)[] => seen.map((p) => p.version);

/** Opens the store `make` builds (given the progress callback), runs `during`, closes it: what it reported. */
async function reports(
  make: (onMigration: (p: MigrationProgress) => void) => SessionStore,
  during?: (s: SessionStore) => Promise<void>,
): Promise<MigrationProgress[]> {
  const seen: MigrationProgress[] = [];
  const store = make((p) => seen.push(p));
  await store.open();
  await during?.(store);
  await store.close();
  return seen;
}

/** A store file with one session, closed, then taken back to schema version 2. */
async function version2File(dir: string): Promise<string> {
  const path = join(dir, SQLITE_FILE);
  const s = new SqliteSessionStore({ path, checkpointMs: 0 });
  await s.open();
  await s.create(sessionRecord('a'), sessionEvent('a', 'session.created'));
  await s.close();
  downgradeToVersion2(path);
  return path;
}

describe('SQLite schema migration progress', () => {
  it('tells a new file its versions from 0, an old file its upgrade, and an up-to-date file nothing', async () => {
    const dir = tempDir();
    const sqlite = (path: string) => (onMigration: (p: MigrationProgress) => void) =>
      new SqliteSessionStore({ path, checkpointMs: 0, onMigration });
    const seen = await reports(sqlite(join(dir, 'new.sqlite')));
    expect(seen[0]).toEqual({ from: 0, to: SQLITE_SCHEMA_VERSION, version: null, ms: null });
    expect(applied(seen)).toEqual([null, ...Array.from({ length: SQLITE_SCHEMA_VERSION }, (_, i) => i + 1)]);
    for (const p of seen.slice(1)) expect(p.ms).toBeGreaterThanOrEqual(0);

    const path = await version2File(dir);
    const upgrade = await reports(sqlite(path), async (old) => {
      expect((await old.get('a'))?.id).toBe('a');
    });
    expect(upgrade).toEqual([
      { from: 2, to: 3, version: null, ms: null },
      { from: 2, to: 3, version: 3, ms: expect.any(Number) as number },
    ]);

    expect(await reports(sqlite(path))).toEqual([]);
  });

  it('makes the server log the upgrade at info, with each version and its time', async () => {
    const dir = tempDir();
    await version2File(dir);
    const lines: { level: number; msg: string; version?: number; ms?: number; from?: number }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n').filter(Boolean))
          lines.push(JSON.parse(l) as (typeof lines)[0]);
        done();
      },
    });
    const server = await startServer(
      { port: 0, host: '127.0.0.1', apiKey: 'migration-key', store: 'sqlite', dataDir: dir },
      { logger: pino({ level: 'info' }, sink), transport: 'memory' },
    );
    await server.close();
    const upgrade = lines.filter((l) => /session store schema/.test(l.msg));
    expect(upgrade).toEqual([
      expect.objectContaining({
        level: 30,
        from: 2,
        msg: 'upgrading the session store schema from version 2 to 3; a large database can take minutes',
      }),
      expect.objectContaining({ level: 30, version: 3, msg: 'session store schema at version 3' }),
    ]);
    expect(upgrade[1]!.ms).toBeGreaterThanOrEqual(0);
  });
});

describe('PostgreSQL schema migration progress', () => {
  let db: TestDatabase | null = null;
  afterAll(async () => {
    await db?.drop();
  });

  it('tells a new database its versions from 0, and an up-to-date one nothing', async () => {
    db = await createTestDatabase();
    const url = db.url;
    const postgres = (onMigration: (p: MigrationProgress) => void) =>
      new PostgresSessionStore({ connectionString: url, poolSize: 2, onMigration });
    const seen = await reports(postgres);
    expect(seen[0]).toEqual({ from: 0, to: SCHEMA_VERSION, version: null, ms: null });
    expect(applied(seen)).toEqual([null, ...Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1)]);

    expect(await reports(postgres)).toEqual([]);
  });
});
