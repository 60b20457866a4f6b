/** The SessionStore conformance suite over SQLite (a temporary file per test), plus what is particular to it. */
import Database from 'better-sqlite3';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/state/group-commit.js';
import type { SessionStore } from '../../src/state/session-store.js';
import { SQLITE_SCHEMA_VERSION } from '../../src/state/sqlite-schema.js';
import { SqliteSessionStore, type SqliteSessionStoreOptions } from '../../src/state/sqlite-session-store.js';
import {
  sessionEvent,
  sessionRecord,
  sessionStoreSuite,
  taskFields,
  type SessionStoreFixture,
} from './session-store-suite.js';

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
    schemaVersion: SQLITE_SCHEMA_VERSION,
  };
}

sessionStoreSuite('sqlite', fixture());
sessionStoreSuite('sqlite, groupCommitMs 0', fixture({ groupCommitMs: 0 }));
sessionStoreSuite('sqlite, synchronous full', fixture({ synchronous: 'full' }));
sessionStoreSuite("sqlite, SQLite's own WAL checkpoints", fixture({ checkpointMs: 0 }));

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
  const count = (s: SqliteSessionStore, table: string): number =>
    (raw(s).prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  const mark = (s: SqliteSessionStore): number =>
    (raw(s).prepare('SELECT indexed FROM session_log_mark').get() as { indexed: number }).indexed;
  /** Each log's count in `session_logs`, and what the index holds of it: the two must agree. */
  const logCounts = (s: SqliteSessionStore): [unknown[], unknown[]] => [
    raw(s).prepare('SELECT session_id, events FROM session_logs WHERE events > 0 ORDER BY session_id').all(),
    raw(s)
      .prepare(
        'SELECT session_id, count(*) AS events FROM session_log_index GROUP BY session_id ORDER BY session_id',
      )
      .all(),
  ];
  /** Events at or before the mark that are not in the index: there must never be any. */
  const unindexedAtOrBelowMark = (s: SqliteSessionStore): number =>
    raw(s)
      .prepare(
        'SELECT count(*) FROM session_events e WHERE e.id <= (SELECT indexed FROM session_log_mark) AND NOT EXISTS ' +
          '(SELECT 1 FROM session_log_index i WHERE i.session_id = e.session_id AND i.id = e.id)',
      )
      .pluck()
      .get() as number;
  /** The files of a store as they are now, as a kill -9 would leave them (the WAL holds the commits). */
  const crashCopy = (s: SqliteSessionStore): string => {
    const path = (s as unknown as { opts: { path: string } }).opts.path;
    const copy = newPath();
    copyFileSync(path, copy);
    copyFileSync(`${path}-wal`, `${copy}-wal`);
    return copy;
  };

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
    expect(
      (raw(s).prepare('SELECT version FROM session_progress').get() as { version: number }).version,
    ).toBe(0);
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
    expect((await Promise.all(pending)).map((r) => r!.version)).toEqual(
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
    expect(ok2).toMatchObject({ status: 'fulfilled', value: { version: 1 } });
    expect(appended).toMatchObject({ status: 'fulfilled', value: [{ type: 'task.commands' }] });
    expect(await s.get('b')).toBeNull();
    expect((await s.allEvents(0, 10)).map((e) => `${e.session_id}:${e.type}`)).toEqual([
      'a:session.created',
      'a:session.updated',
      'a:task.commands',
    ]);
  });

  it('keeps the task JSON out of the session row, and writes it only when a write gives it', async () => {
    const s = await store();
    const db = raw(s);
    expect(db.prepare("SELECT name FROM pragma_table_info('sessions') WHERE name = 'task'").all()).toEqual(
      [],
    );
    expect(
      db.prepare("SELECT name FROM pragma_index_list('sessions') WHERE name = 'sessions_updated'").all(),
    ).toEqual([]);
    // Every write to session_tasks, logged by triggers of this connection.
    db.exec(`CREATE TEMP TABLE task_writes (op TEXT NOT NULL, id TEXT NOT NULL);
      CREATE TEMP TRIGGER task_insert AFTER INSERT ON session_tasks
        BEGIN INSERT INTO task_writes VALUES ('insert', new.id); END;
      CREATE TEMP TRIGGER task_update AFTER UPDATE ON session_tasks
        BEGIN INSERT INTO task_writes VALUES ('update', new.id); END;
      CREATE TEMP TRIGGER task_delete AFTER DELETE ON session_tasks
        BEGIN INSERT INTO task_writes VALUES ('delete', old.id); END;`);
    const writes = (): string[] =>
      (db.prepare('SELECT op, id FROM task_writes ORDER BY rowid').all() as { op: string; id: string }[]).map(
        (w) => `${w.op} ${w.id}`,
      );

    const task = taskFields({ request: JSON.stringify({ plan: 'x'.repeat(100_000) }) });
    const t = sessionRecord('t', { session_type: 'task', task, managed_by: 'node-1' });
    await s.create(sessionRecord('p'), sessionEvent('p', 'session.created'));
    await s.create(t, sessionEvent('t', 'session.created'));
    expect(writes()).toEqual(['insert t']);
    // The hot path: checkpoints and status, pipelined, leave the task's row alone.
    const history = [...t.status_history, { status: 'paused' as const, at: t.created_at }];
    await Promise.all([
      ...[0, 1, 2].map((v) => s.update('t', v, { checkpoint: { aip_steps: v + 1 } }, sessionEvent('t'))),
      s.update('t', 3, { status: 'paused', status_history: history }, sessionEvent('t')),
      s.update('p', 0, { checkpoint: { n: 1 } }, sessionEvent('p')),
    ]);
    expect(writes()).toEqual(['insert t']);
    const running = { ...task, state: 'running' };
    await s.update('t', 4, { task: running }, sessionEvent('t'));
    await s.update('p', 1, { task: taskFields({ task_name: 'later' }) }, sessionEvent('p'));
    // A stale update writes nothing, the task included.
    expect(await s.update('t', 4, { task: null }, sessionEvent('t'))).toBeNull();
    await s.update('p', 2, { task: null }, sessionEvent('p'));
    expect(writes()).toEqual(['insert t', 'update t', 'insert p', 'delete p']);
    const expected = {
      ...t,
      status: 'paused',
      status_history: history,
      checkpoint: { aip_steps: 3 },
      task: running,
      version: 5,
    };
    expect(await s.get('t')).toEqual(expected);
    expect((await s.list({ task_name: 'task-1' }, { limit: 10 })).items).toEqual([expected]);
    expect((await s.get('p'))!.task).toBeNull();
    expect((await s.list({ task_name: 'later' }, { limit: 10 })).items).toEqual([]);
    // A deleted session's task goes with it.
    await s.delete('t', sessionEvent('t', 'session.deleted'));
    expect(writes()).toEqual(['insert t', 'update t', 'insert p', 'delete p', 'delete t']);
    expect(count(s, 'session_tasks')).toBe(0);
  });

  it('indexes a log before a read of it, and the open after a crash indexes what the crash left', async () => {
    const a = await store({ maxEventsPerSession: 5 });
    await a.create(sessionRecord('s1'), sessionEvent('s1', 'session.created'));
    await a.appendEvents(
      Array.from({ length: 7 }, (_, n) => sessionEvent(n % 2 ? 's2' : 's1', 'task.commands', { n })),
    );
    await a.update('s1', 0, { checkpoint: { n: 1 } }, sessionEvent('s1', 'session.updated', { n: 'u' }));
    // Committed, not indexed yet (s1's log is one over the limit).
    expect([count(a, 'session_events'), count(a, 'session_log_index')]).toEqual([9, 0]);

    const crashed = crashCopy(a);

    const s1 = [0, 2, 4, 6, 'u'];
    expect((await a.events('s1', 0, 100)).map((e) => e.data.n)).toEqual(s1);
    // s1's log only (trimmed to 5), not s2's.
    expect([count(a, 'session_events'), count(a, 'session_log_index')]).toEqual([8, 5]);
    expect((await a.events('s2', 0, 100)).map((e) => e.data.n)).toEqual([1, 3, 5]);
    expect([count(a, 'session_events'), count(a, 'session_log_index')]).toEqual([8, 8]);
    const b = await store({ path: crashed, maxEventsPerSession: 5 });
    expect([count(b, 'session_events'), count(b, 'session_log_index')]).toEqual([8, 8]);
    expect(await b.events('s1', 0, 100)).toEqual(await a.events('s1', 0, 100));
    expect((await b.events('s2', 0, 100)).map((e) => e.data.n)).toEqual([1, 3, 5]);
    expect(await b.allEvents(0, 100)).toEqual(await a.allEvents(0, 100));
    expect(raw(b).prepare('SELECT session_id, events FROM session_logs ORDER BY session_id').all()).toEqual([
      { session_id: 's1', events: 5 },
      { session_id: 's2', events: 3 },
    ]);
  });

  it("indexes a session's log in the commit that brings its unindexed events to 64, and trims it there", async () => {
    const s = await store({ maxEventsPerSession: 100 });
    await s.appendEvents(Array.from({ length: 63 }, (_, n) => sessionEvent('a', 'task.commands', { n })));
    expect(count(s, 'session_log_index')).toBe(0);
    await s.appendEvents([
      sessionEvent('a', 'task.commands', { n: 63 }),
      ...Array.from({ length: 10 }, (_, n) => sessionEvent('b', 'task.commands', { n })),
    ]);
    // a's 64 in that commit; b's 10 wait.
    expect(raw(s).prepare('SELECT DISTINCT session_id FROM session_log_index').pluck().all()).toEqual(['a']);
    expect(count(s, 'session_log_index')).toBe(64);
    // 100 more for a: indexed in the commit that reaches 64, and the log trimmed to its newest 100 there.
    await s.appendEvents(
      Array.from({ length: 100 }, (_, n) => sessionEvent('a', 'task.commands', { n: 64 + n })),
    );
    expect(count(s, 'session_events')).toBe(110);
    expect(logCounts(s)[0]).toEqual([{ session_id: 'a', events: 100 }]);
    // A read indexes the rest first.
    expect((await s.events('b', 0, 100)).map((e) => e.data.n)).toEqual([...Array(10).keys()]);
    const a = await s.events('a', 0, 1000);
    expect(a.map((e) => e.data.n)).toEqual(Array.from({ length: 100 }, (_, n) => 64 + n));
    const [counted, indexed] = logCounts(s);
    expect(counted).toEqual(indexed);
    expect(counted).toEqual([
      { session_id: 'a', events: 100 },
      { session_id: 'b', events: 10 },
    ]);
    expect(unindexedAtOrBelowMark(s)).toBe(0);
  });

  it('indexes a quiet session once the log has grown past it, and moves the mark to before the oldest unindexed event', async () => {
    const s = await store({ logIndex: { batch: 8, lag: 100, markEvery: 20 } });
    const [quiet] = await s.appendEvents([sessionEvent('quiet', 'task.commands')]);
    const inner = s as unknown as { log: { unindexed: number } };
    const quietIndexed = raw(s)
      .prepare("SELECT count(*) FROM session_log_index WHERE session_id = 'quiet'")
      .pluck();
    let last = quiet!.id;
    while (last < quiet!.id + 150) {
      const added = await s.appendEvents(Array.from({ length: 5 }, (_, i) => sessionEvent(`b${i % 2}`, 'x')));
      last = added[4]!.id;
      expect(unindexedAtOrBelowMark(s)).toBe(0);
      // The busy logs are indexed 8 at a time: what waits is under 8 each, and the quiet one's until it lags.
      expect(inner.log.unindexed).toBeLessThanOrEqual(1 + 2 * 7);
      if (last < quiet!.id + 100) {
        expect(quietIndexed.get()).toBe(0);
        expect(mark(s)).toBeLessThan(quiet!.id);
      }
    }
    expect(quietIndexed.get()).toBe(1);
    expect(mark(s)).toBeGreaterThan(quiet!.id);
  });

  it('indexes many quiet sessions each at its own commit, not all together', async () => {
    // 100 sessions, 10 events a commit at pseudo-random: none reaches the batch, so each is indexed when it lags.
    const s = await store({ logIndex: { batch: 64, lag: 200, markEvery: 50 } });
    const inner = s as unknown as { log: { unindexed: number } };
    let seed = 7;
    const next = (): number => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648);
    let indexed = count(s, 'session_log_index');
    const perCommit: number[] = [];
    for (let c = 0; c < 120; c++) {
      await s.appendEvents(Array.from({ length: 10 }, () => sessionEvent(`q${next() % 100}`, 'x')));
      const now = count(s, 'session_log_index');
      perCommit.push(now - indexed);
      indexed = now;
      expect(inner.log.unindexed).toBeLessThanOrEqual(200 + 10);
      expect(unindexedAtOrBelowMark(s)).toBe(0);
    }
    // Once the log is 200 past its start (commit 20), most commits index a few sessions. One run over all of them
    // would index the ~200 events that wait at that point in one commit.
    const steady = perCommit.slice(20);
    expect(steady.filter((n) => n > 0).length).toBeGreaterThan(40);
    expect(Math.max(...perCommit)).toBeLessThan(100);
    expect(indexed).toBeGreaterThan(800);
  });

  it('recovers after a crash that left logs indexed past the mark: no event twice, counts and trims right', async () => {
    // The mark does not move in this test: s1's log is indexed (and trimmed) after it, s2's is not indexed.
    const limits = { batch: 4, lag: 1_000, markEvery: 1_000 };
    const a = await store({ maxEventsPerSession: 5, logIndex: limits });
    await a.appendEvents([sessionEvent('s1', 'x', { n: 0 }), sessionEvent('s2', 'x', { n: 0 })]);
    for (let n = 1; n < 12; n++) await a.appendEvents([sessionEvent('s1', 'x', { n })]);
    await a.appendEvents([sessionEvent('s2', 'x', { n: 1 })]);
    expect(mark(a)).toBe(0);
    expect(count(a, 'session_log_index')).toBe(5);
    const crashed = crashCopy(a);

    const b = await store({ path: crashed, maxEventsPerSession: 5, logIndex: limits });
    for (const s of [a, b]) {
      expect((await s.events('s1', 0, 100)).map((e) => e.data.n)).toEqual([7, 8, 9, 10, 11]);
      expect((await s.events('s2', 0, 100)).map((e) => e.data.n)).toEqual([0, 1]);
      const [counted, indexed] = logCounts(s);
      expect(counted).toEqual(indexed);
      expect(counted).toEqual([
        { session_id: 's1', events: 5 },
        { session_id: 's2', events: 2 },
      ]);
    }
    expect(await b.allEvents(0, 100)).toEqual(await a.allEvents(0, 100));
    for (const s of [a, b]) expect(unindexedAtOrBelowMark(s)).toBe(0);
  });

  it('rolls a failed batch back with the indexing it did, and retries its writes alone', async () => {
    const s = await store({ logIndex: { batch: 2, lag: 1_000, markEvery: 1_000 } });
    const created = await s.create(sessionRecord('a'), sessionEvent('a', 'session.created'));
    // The next commit indexes a's log (two events), and its last step fails (as a full disk would).
    const st = (s as unknown as { log: { st: { count: { get: (...args: unknown[]) => unknown } } } }).log.st;
    const countStatement = st.count;
    st.count = {
      get: () => {
        st.count = countStatement;
        throw new Error('disk full');
      },
    };
    const [updated, appended] = await Promise.all([
      s.update('a', 0, { checkpoint: { n: 1 } }, sessionEvent('a')),
      s.appendEvents([sessionEvent('a', 'task.commands')]),
    ]);
    expect(updated!.version).toBe(1);
    // The ids the failed transaction gave were taken back: the retries give the next ones, with no gap.
    expect([updated!.event.id, appended[0]!.id]).toEqual([created!.id + 1, created!.id + 2]);
    // Retried alone: the first indexed from the file what is after the mark (nothing of the failed one stayed),
    // the second not (one event of a is unindexed).
    expect([count(s, 'session_events'), count(s, 'session_log_index')]).toEqual([3, 2]);
    const log = await s.events('a', 0, 10);
    expect(log).toEqual([expect.objectContaining({ type: 'session.created' }), updated!.event, ...appended]);
    expect([count(s, 'session_events'), count(s, 'session_log_index')]).toEqual([3, 3]);
    expect(logCounts(s)[0]).toEqual([{ session_id: 'a', events: 3 }]);
    expect(unindexedAtOrBelowMark(s)).toBe(0);
    // Close indexes everything and moves the mark to the newest event.
    const path = (s as unknown as { opts: { path: string } }).opts.path;
    await s.close();
    const db = new Database(path);
    expect(db.prepare('SELECT indexed FROM session_log_mark').pluck().get()).toBe(appended[0]!.id);
    db.close();
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
