/**
 * The SessionStore conformance suite over PostgreSQL: a throwaway database for this file, a fresh schema per
 * test. PostgreSQL must be running (CI starts it); when it is not, every test fails saying so.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import {
  EVENTS_LOCK,
  PostgresSessionStore,
  type PostgresSessionStoreOptions,
} from '../../src/state/postgres-session-store.js';
import type { SessionStore } from '../../src/state/session-store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { until } from '../helpers/process.js';
import {
  sessionEvent,
  sessionRecord,
  sessionStoreSuite,
  type SessionStoreFixture,
} from './session-store-suite.js';

let db: TestDatabase | null = null;
let unreachable: Error | null = null;
beforeAll(async () => {
  try {
    db = await createTestDatabase();
  } catch (err) {
    unreachable = err as Error;
  }
});
afterAll(async () => {
  await db?.drop();
});

function database(): TestDatabase {
  if (!db) throw unreachable ?? new Error('the test database is not ready');
  return db;
}

let schemas = 0;
/** A fresh schema; a connection string whose search path is it. */
async function freshSchema(): Promise<{ schema: string; url: string }> {
  const schema = `t${++schemas}`;
  await database().query(`CREATE SCHEMA ${schema}`);
  return { schema, url: database().urlWithSchema(schema) };
}

function fixture(extra: Partial<PostgresSessionStoreOptions> = {}): SessionStoreFixture {
  const made = new WeakMap<SessionStore, { schema: string; opts: PostgresSessionStoreOptions }>();
  const make = (schema: string, opts: PostgresSessionStoreOptions): SessionStore => {
    const store = new PostgresSessionStore(opts);
    made.set(store, { schema, opts });
    return store;
  };
  return {
    async make({ maxEventsPerSession }) {
      const { schema, url } = await freshSchema();
      return make(schema, { connectionString: url, maxEventsPerSession, poolSize: 4, ...extra });
    },
    reopen: (store) => {
      const { schema, opts } = made.get(store)!;
      return make(schema, opts);
    },
    async setSchemaVersion(store, version) {
      const { schema } = made.get(store)!;
      await database().query(`UPDATE ${schema}.schema_meta SET value = $1 WHERE key = 'schema_version'`, [
        String(version),
      ]);
    },
    async dispose(store) {
      await database().query(`DROP SCHEMA ${made.get(store)!.schema} CASCADE`);
    },
  };
}

sessionStoreSuite('postgres', fixture());
sessionStoreSuite('postgres, groupCommitMs 0', fixture({ groupCommitMs: 0 }));

describe('PostgresSessionStore', () => {
  const open: PostgresSessionStore[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });
  async function store(
    url: string,
    opts: Partial<PostgresSessionStoreOptions> = {},
  ): Promise<PostgresSessionStore> {
    const s = new PostgresSessionStore({ connectionString: url, poolSize: 4, ...opts });
    open.push(s);
    await s.open();
    return s;
  }

  it('reaches PostgreSQL', () => {
    expect(unreachable?.message ?? null).toBeNull();
  });

  it('refuses a maxEventsPerSession below 1, as the SQLite store does (a trim must keep the newest event)', () => {
    for (const n of [0, -1, 1.5])
      expect(
        () => new PostgresSessionStore({ connectionString: 'postgres://unused', maxEventsPerSession: n }),
      ).toThrow(`maxEventsPerSession must be a positive integer, got ${n}`);
  });

  it('keeps json text exactly: key order, "\\u0000" and lone surrogates, which jsonb would not', async () => {
    const { schema, url } = await freshSchema();
    const s = await store(url);
    const context = { b: 1, a: 'nul \u0000 and \ud800', c: { z: [], y: {} } };
    await s.create(sessionRecord('j', { context }), sessionEvent('j', 'session.created'));
    const stored = await database().query(
      `SELECT context::text AS t, pg_typeof(context)::text AS type FROM ${schema}.sessions`,
    );
    expect(stored.rows[0]).toEqual({ t: JSON.stringify(context), type: 'json' });
  });

  it('lets two nodes share a database: versions guard their writes, and event ids commit in order', async () => {
    const { url } = await freshSchema();
    const [a, b] = [await store(url), await store(url)];
    await a.create(sessionRecord('s1'), sessionEvent('s1', 'session.created'));
    expect(await b.create(sessionRecord('s1'), sessionEvent('s1', 'session.created'))).toBeNull();
    expect(await b.update('s1', 0, { checkpoint: { by: 'b' } }, sessionEvent('s1'))).not.toBeNull();
    expect(await a.update('s1', 0, { checkpoint: { by: 'a' } }, sessionEvent('s1'))).toBeNull();
    expect((await a.get('s1'))!.checkpoint).toEqual({ by: 'b' });

    // Both nodes write at once, while a reader follows allEvents: it must see every event, in id order.
    const seen: number[] = [];
    let after = 0;
    let writing = true;
    const reader = (async () => {
      while (writing || seen.length < 2 + 2 * 300) {
        const page = await a.allEvents(after, 1000);
        for (const e of page) seen.push(e.id);
        if (page.length > 0) after = page[page.length - 1]!.id;
        else if (!writing) break;
      }
    })();
    await Promise.all(
      [a, b].flatMap((node, k) =>
        Array.from({ length: 300 }, (_, n) =>
          node.appendEvents([sessionEvent(`s${k}`, 'task.commands', { n })]),
        ),
      ),
    );
    writing = false;
    await reader;
    const all = (await a.allEvents(0, 10_000)).map((e) => e.id);
    expect(all).toHaveLength(2 + 2 * 300);
    expect(seen).toEqual(all);
  });

  it('rejects only the write the database refuses, and commits the rest of its batch', async () => {
    const { url } = await freshSchema();
    const s = await store(url);
    const [ok1, bad, ok2, appended] = await Promise.allSettled([
      s.create(sessionRecord('a'), sessionEvent('a', 'session.created')),
      // PostgreSQL text cannot hold NUL.
      s.create(sessionRecord('b', { agent_id: 'x\u0000y' }), sessionEvent('b', 'session.created')),
      s.update('a', 0, { checkpoint: { n: 1 } }, sessionEvent('a')),
      s.appendEvents([sessionEvent('a', 'task.commands')]),
    ]);
    expect(ok1.status).toBe('fulfilled');
    expect(bad).toMatchObject({ status: 'rejected', reason: { code: '22021' } });
    expect(ok2).toMatchObject({ status: 'fulfilled', value: { version: 1 } });
    expect(appended).toMatchObject({ status: 'fulfilled', value: [{ type: 'task.commands' }] });
    expect(await s.get('b')).toBeNull();
    expect((await s.allEvents(0, 10)).map((e) => `${e.session_id}:${e.type}`)).toEqual([
      'a:session.created',
      'a:session.updated',
      'a:task.commands',
    ]);
  });

  it('survives the server ending a connection mid-transaction: that batch rejects with the cause, the next commits', async () => {
    const { url } = await freshSchema();
    const s = await store(url);
    await s.create(sessionRecord('k'), sessionEvent('k', 'session.created'));
    // Hold the lock every commit takes, so the store's next commit waits inside its transaction.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1)', [EVENTS_LOCK]);
      const write = s.appendEvents([sessionEvent('k', 'task.commands', { n: 1 })]);
      const waiting = async (): Promise<number[]> =>
        (
          await holder.query<{ pid: number }>(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid <> pg_backend_pid()",
          )
        ).rows.map((r) => r.pid);
      let pids: number[] = [];
      await until(async () => (pids = await waiting()).length > 0, 'the commit to wait for the lock');
      expect(pids).toHaveLength(1);
      // Handled from now on: the write may reject before the holder hears back from pg_terminate_backend, and a
      // rejection with no handler yet is an unhandled one.
      const writeFails = expect(write).rejects.toThrow(/terminat/);
      // What PostgreSQL does to a transaction idle past idle_in_transaction_session_timeout, or an administrator.
      await holder.query('SELECT pg_terminate_backend($1)', [pids[0]]);
      await writeFails;
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    await s.appendEvents([sessionEvent('k', 'task.commands', { n: 2 })]);
    const events = await s.allEvents(0, 10);
    expect(events.map((e) => e.data)).toEqual([expect.anything(), { n: 2 }]);
  });

  it('rejects writes and reads clearly when the server is gone', async () => {
    const s = new PostgresSessionStore({ connectionString: 'postgres://postgres@127.0.0.1:1/none' });
    await expect(s.open()).rejects.toThrow(/ECONNREFUSED/);
    await expect(s.get('a')).rejects.toThrow('not open');
  });
});
