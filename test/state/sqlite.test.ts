/** The SessionStore conformance suite over SQLite (a temporary file per test), plus what is particular to it. */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/state/group-commit.js';
import type { SessionStore } from '../../src/state/session-store.js';
import { SqliteSessionStore, type SqliteSessionStoreOptions } from '../../src/state/sqlite-session-store.js';
import { sessionEvent, sessionRecord, sessionStoreSuite, type SessionStoreFixture } from './session-store-suite.js';

const dir = mkdtempSync(join(tmpdir(), 'aipd-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const newPath = (): string => join(dir, `sessions-${++files}.db`);
const removeDb = (path: string): void => {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(path + suffix, { force: true });
};

function fixture(extra: Partial<SqliteSessionStoreOptions> = {}): SessionStoreFixture {
  const options = new WeakMap<SessionStore, SqliteSessionStoreOptions>();
  const make = (opts: SqliteSessionStoreOptions): SessionStore => {
    const store = new SqliteSessionStore(opts);
    options.set(store, opts);
    return store;
  };
  return {
    make: ({ maxEventsPerSession }) => make({ path: newPath(), maxEventsPerSession, ...extra }),
    reopen: (store) => make(options.get(store)!),
    setSchemaVersion: (store, version) => {
      const db = new Database(options.get(store)!.path);
      db.prepare("UPDATE schema_meta SET value = ? WHERE key = 'schema_version'").run(String(version));
      db.close();
      return Promise.resolve();
    },
    dispose: (store) => removeDb(options.get(store)!.path),
  };
}

sessionStoreSuite('sqlite', fixture());
sessionStoreSuite('sqlite, groupCommitMs 0', fixture({ groupCommitMs: 0 }));
sessionStoreSuite('sqlite, synchronous full', fixture({ synchronous: 'full' }));

describe('GroupCommit', () => {
  it('commits after the delay, one batch at a time, at most maxBatch each, and drains on demand', async () => {
    const commits: number[][] = [];
    let release: (() => void) | null = null;
    const q = new GroupCommit<number>(
      5,
      (batch) => {
        commits.push(batch);
        return new Promise<void>((r) => (release = r));
      },
      3,
    );
    for (let i = 0; i < 5; i++) q.add(i);
    expect(commits).toEqual([]);
    await new Promise((r) => setTimeout(r, 20));
    expect(commits).toEqual([[0, 1, 2]]);
    q.add(5);
    // One commit at a time: the rest waits for the running one.
    await new Promise((r) => setTimeout(r, 20));
    expect(commits).toHaveLength(1);
    const drained = q.drain();
    release!();
    await new Promise((r) => setImmediate(r));
    expect(commits).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    release!();
    await drained;
    expect(q.pending).toBe(0);
  });
});

describe('SqliteSessionStore', () => {
  const open: SqliteSessionStore[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });
  async function store(opts: Partial<SqliteSessionStoreOptions> = {}): Promise<SqliteSessionStore> {
    const s = new SqliteSessionStore({ path: newPath(), ...opts });
    open.push(s);
    await s.open();
    return s;
  }
  const raw = (s: SqliteSessionStore): Database.Database => (s as unknown as { db: Database.Database }).db;

  it('runs in WAL mode with the synchronous level it documents', async () => {
    const normal = await store();
    expect(raw(normal).pragma('journal_mode', { simple: true })).toBe('wal');
    expect(raw(normal).pragma('synchronous', { simple: true })).toBe(1);
    const full = await store({ synchronous: 'full' });
    expect(raw(full).pragma('synchronous', { simple: true })).toBe(2);
  });

  it('works on a private in-memory database', async () => {
    const s = new SqliteSessionStore({ path: ':memory:' });
    open.push(s);
    await s.open();
    await s.create(sessionRecord('a'), sessionEvent('a', 'session.created'));
    expect(await s.get('a')).toEqual(sessionRecord('a'));
  });

  it('commits the writes of one tick in one transaction, after the group commit delay', async () => {
    const s = await store({ groupCommitMs: 5 });
    await s.create(sessionRecord('a'), sessionEvent('a', 'session.created'));
    const inner = s as unknown as { tx: (batch: unknown[]) => unknown[] };
    const tx = inner.tx;
    const batches: number[] = [];
    inner.tx = (batch) => {
      batches.push(batch.length);
      return tx(batch);
    };
    const pending = Array.from({ length: 50 }, (_, v) =>
      s.update('a', v, { checkpoint: { v } }, sessionEvent('a')),
    );
    pending.push(s.appendEvents([sessionEvent('a', 'task.commands')]) as never);
    // Nothing is committed before the group's timer fires (or a read drains the queue).
    expect((raw(s).prepare('SELECT version FROM sessions').get() as { version: number }).version).toBe(0);
    expect((await Promise.all(pending)).every((r) => r !== null)).toBe(true);
    expect(batches).toEqual([51]);
    expect((await s.get('a'))!.version).toBe(50);
  });

  it('splits a burst into transactions of at most 1000 writes, in order, and a read drains them all', async () => {
    const s = await store();
    await s.create(sessionRecord('a'), sessionEvent('a', 'session.created'));
    const inner = s as unknown as { tx: (batch: unknown[]) => unknown[] };
    const tx = inner.tx;
    const batches: number[] = [];
    inner.tx = (batch) => {
      batches.push(batch.length);
      return tx(batch);
    };
    const pending = Array.from({ length: 2500 }, (_, v) =>
      s.update('a', v, { checkpoint: { v } }, sessionEvent('a')),
    );
    expect((await s.get('a'))!.version).toBe(2500);
    expect(batches).toEqual([1000, 1000, 500]);
    expect((await Promise.all(pending)).map((r) => r!.record.version)).toEqual(
      Array.from({ length: 2500 }, (_, v) => v + 1),
    );
  });

  it('rejects only the write that fails, and commits the rest of its batch', async () => {
    const s = await store();
    const [ok1, bad, ok2, appended] = await Promise.allSettled([
      s.create(sessionRecord('a'), sessionEvent('a', 'session.created')),
      // A blob where the STRICT table wants text: the database refuses it.
      s.create(
        sessionRecord('b', { agent_id: Buffer.from('x') as unknown as string }),
        sessionEvent('b', 'session.created'),
      ),
      s.update('a', 0, { checkpoint: { n: 1 } }, sessionEvent('a')),
      s.appendEvents([sessionEvent('a', 'task.commands')]),
    ]);
    expect(ok1.status).toBe('fulfilled');
    expect(bad.status).toBe('rejected');
    expect(ok2).toMatchObject({ status: 'fulfilled', value: { record: { version: 1 } } });
    expect(appended).toMatchObject({ status: 'fulfilled', value: [{ type: 'task.commands' }] });
    expect(await s.get('b')).toBeNull();
    expect((await s.allEvents(0, 10)).map((e) => `${e.session_id}:${e.type}`)).toEqual([
      'a:session.created',
      'a:session.updated',
      'a:task.commands',
    ]);
  });

  it('never reuses an event id, even after the newest event was deleted and the file reopened', async () => {
    const path = newPath();
    let s = new SqliteSessionStore({ path });
    await s.open();
    const [, last] = await s.appendEvents([sessionEvent('a', 'x'), sessionEvent('a', 'y')]);
    await s.close();
    const db = new Database(path);
    db.prepare('DELETE FROM session_events WHERE id = ?').run(last!.id);
    db.close();
    s = new SqliteSessionStore({ path });
    open.push(s);
    await s.open();
    const [next] = await s.appendEvents([sessionEvent('a', 'z')]);
    expect(next!.id).toBeGreaterThan(last!.id);
  });

  it('inserts a large batch of events in order across multi-row statements', async () => {
    const s = await store({ maxEventsPerSession: 1000 });
    const events = await s.appendEvents(
      Array.from({ length: 517 }, (_, n) => sessionEvent(`s${n % 3}`, 't', { n })),
    );
    expect(events.map((e) => e.data.n)).toEqual(Array.from({ length: 517 }, (_, n) => n));
    expect(await s.allEvents(0, 1000)).toEqual(events);
  });

  it('refuses to be used before open and after close', async () => {
    const s = new SqliteSessionStore({ path: newPath() });
    await expect(s.get('a')).rejects.toThrow('not open');
    await expect(s.create(sessionRecord('a'), sessionEvent('a', 'session.created'))).rejects.toThrow(
      'not open',
    );
    await s.open();
    await s.close();
    await s.close();
    await expect(s.list({}, { limit: 1 })).rejects.toThrow('not open');
  });
});
