/**
 * The shared conformance suite of the SessionStore interface. Every implementation (memory, SQLite, PostgreSQL)
 * runs exactly these tests through its own `*.test.ts`, so they behave as one. The client directory's suite is in
 * directory-suite.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JsonObject, SessionStatus, StatusEntry, TaskFields } from '../../src/state/session-model.js';
import {
  matchesFilter,
  newestFirst,
  type NewEvent,
  type Page,
  type SessionEvent,
  type SessionFilter,
  type SessionRecord,
  type SessionStore,
  type UpdateResult,
} from '../../src/state/session-store.js';
import { SCHEMA_VERSION } from '../../src/state/sql-schema.js';

const AT = '2026-01-01T00:00:00.000Z';
/** A time `s` seconds after AT. */
const at = (s: number): string => new Date(Date.parse(AT) + s * 1000).toISOString();

/** A plain (REST) session record at version 0. */
export function sessionRecord(id: string, over: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id,
    agent_id: 'agent-1',
    session_type: 'chat',
    status: 'active',
    context: {},
    checkpoint: null,
    runtime_backend: 'local',
    runtime_metadata: {},
    created_at: AT,
    updated_at: AT,
    status_history: [{ status: 'active', at: AT }],
    task: null,
    managed_by: null,
    version: 0,
    ...over,
  };
}

/** The fields of an AIP task session. */
export function taskFields(over: Partial<TaskFields> = {}): TaskFields {
  return {
    task_name: 'task-1',
    requester: 'client-1',
    executor: 'agent-1',
    platform: 'linux',
    mode: 'service',
    request: '{"type":"task","task_name":"task-1"}',
    state: 'created',
    state_history: [{ state: 'created', at: AT }],
    result: null,
    error: null,
    requester_notified: false,
    ...over,
  };
}

export function sessionEvent(sessionId: string, type = 'session.updated', data: JsonObject = {}): NewEvent {
  return { session_id: sessionId, type, at: AT, data };
}

export interface SessionStoreFixture {
  /** A new store over new, empty storage; not opened yet (the suite opens and closes it). */
  make(opts: { maxEventsPerSession: number }): Promise<SessionStore> | SessionStore;
  /** Durable stores: a new, unopened store over the storage of `store` (closed by then), with its options. */
  reopen?(store: SessionStore): Promise<SessionStore> | SessionStore;
  /** Durable stores: writes `version` as the schema version of the storage of `store` (closed by then). */
  setSchemaVersion?(store: SessionStore, version: number): Promise<void>;
  /** Durable stores: the schema version the store writes, when not `SCHEMA_VERSION` (PostgreSQL's). */
  schemaVersion?: number;
  /** Frees the storage of a store `make` returned (closed by then). */
  dispose?(store: SessionStore): Promise<void> | void;
}

/**
 * Tries to change a value a store handed out. The store's own copy must not change either way: the value is the
 * caller's copy (it changes) or frozen (the change throws).
 */
function tamper(change: () => void): void {
  try {
    change();
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
  }
}

/** Strictly growing. */
function expectGrowing(ids: readonly number[]): void {
  for (let i = 1; i < ids.length; i++)
    expect(ids[i]!, `id #${i} of ${ids.join(',')}`).toBeGreaterThan(ids[i - 1]!);
}

export function sessionStoreSuite(name: string, fixture: SessionStoreFixture): void {
  describe(`SessionStore conformance: ${name}`, () => {
    let made: SessionStore[] = [];
    let live: SessionStore[] = [];
    let s: SessionStore;

    /** An opened store over fresh storage. */
    async function fresh(maxEventsPerSession = 10_000): Promise<SessionStore> {
      const store = await fixture.make({ maxEventsPerSession });
      made.push(store);
      live.push(store);
      await store.open();
      return store;
    }

    /** A new, unopened store over the storage of `store`, after closing it. */
    async function reopen(store: SessionStore): Promise<SessionStore> {
      await store.close();
      const next = await fixture.reopen!(store);
      live.push(next);
      return next;
    }

    beforeEach(async () => {
      s = await fresh();
    });
    afterEach(async () => {
      for (const store of live) await store.close();
      for (const store of made) await fixture.dispose?.(store);
      made = [];
      live = [];
    });

    it('creates a record with its event, gets it, and refuses a second create of the id without changing anything', async () => {
      const created = await s.create(
        sessionRecord('s1'),
        sessionEvent('s1', 'session.created', { agent_id: 'agent-1' }),
      );
      expect(created).toEqual({
        id: expect.any(Number),
        session_id: 's1',
        type: 'session.created',
        at: AT,
        data: { agent_id: 'agent-1' },
      });
      expect(
        await s.create(sessionRecord('s1', { agent_id: 'intruder' }), sessionEvent('s1', 'session.created')),
      ).toBeNull();
      expect(await s.get('s1')).toEqual(sessionRecord('s1'));
      expect(await s.events('s1', 0, 100)).toEqual([created]);
      expect(await s.get('missing')).toBeNull();
    });

    it('updates only at the version it names: a stale or missing one resolves null and changes nothing', async () => {
      await s.create(sessionRecord('s1'), sessionEvent('s1', 'session.created'));
      const history = [
        { status: 'active', at: AT },
        { status: 'paused', at: at(1), reason: 'user asked' },
      ] as const;
      const res = await s.update(
        's1',
        0,
        { status: 'paused', status_history: history, updated_at: at(1) },
        sessionEvent('s1', 'session.updated', { updates: ['status'] }),
      );
      const v1 = {
        ...sessionRecord('s1'),
        status: 'paused',
        status_history: history,
        updated_at: at(1),
        version: 1,
      };
      // The new version and the event; not the record (get reads it).
      expect(res).toEqual({
        version: 1,
        event: {
          id: expect.any(Number),
          session_id: 's1',
          type: 'session.updated',
          at: AT,
          data: { updates: ['status'] },
        },
      });
      expect(await s.get('s1')).toEqual(v1);

      expect(await s.update('s1', 0, { status: 'failed', updated_at: at(2) }, sessionEvent('s1'))).toBeNull();
      expect(await s.update('s1', 7, { status: 'failed', updated_at: at(2) }, sessionEvent('s1'))).toBeNull();
      expect(await s.update('missing', 0, { status: 'failed' }, sessionEvent('missing'))).toBeNull();
      expect(await s.get('s1')).toEqual(v1);
      expect(await s.get('missing')).toBeNull();
      expect((await s.events('s1', 0, 100)).map((e) => e.type)).toEqual([
        'session.created',
        'session.updated',
      ]);
      expect(await s.events('missing', 0, 100)).toEqual([]);

      // Absent keys, and keys given as undefined, stay as they are.
      const v2 = await s.update('s1', 1, { checkpoint: { step: 1 }, context: undefined }, sessionEvent('s1'));
      expect(v2).toEqual({ version: 2, event: expect.objectContaining({ session_id: 's1' }) as unknown });
      expect(await s.get('s1')).toEqual({ ...v1, checkpoint: { step: 1 }, version: 2 });
    });

    it('applies pipelined updates in call order, each naming the version the previous one will have made', async () => {
      await s.create(sessionRecord('s1'), sessionEvent('s1', 'session.created'));
      const settled: number[] = [];
      const pending = [0, 1, 2, 3, 4].map((v) =>
        s
          .update(
            's1',
            v,
            { checkpoint: { step: v }, updated_at: at(v + 1) },
            sessionEvent('s1', 'session.updated', { step: v }),
          )
          .then((r) => {
            settled.push(v);
            return r;
          }),
      );
      const results = await Promise.all(pending);
      expect(settled).toEqual([0, 1, 2, 3, 4]);
      expect(results.map((r) => r?.version)).toEqual([1, 2, 3, 4, 5]);
      expect(results.map((r) => r?.event.data)).toEqual([0, 1, 2, 3, 4].map((step) => ({ step })));
      expectGrowing(results.map((r) => r!.event.id));
      expect(await s.get('s1')).toEqual({
        ...sessionRecord('s1'),
        checkpoint: { step: 4 },
        updated_at: at(5),
        version: 5,
      });
      expect((await s.events('s1', 0, 100)).slice(1)).toEqual(results.map((r) => r!.event));

      // Reads between pipelined writes: each sees every write called before it (a store may show it later ones
      // too), whole (the checkpoint of the version it shows), and as its own copy.
      const writes: Promise<UpdateResult | null>[] = [];
      const reads: Promise<SessionRecord | null>[] = [];
      for (const v of [5, 6, 7]) {
        writes.push(
          s.update(
            's1',
            v,
            { checkpoint: { step: v }, updated_at: at(v + 1) },
            sessionEvent('s1', 'session.updated', { step: v }),
          ),
        );
        reads.push(s.get('s1'));
      }
      expect((await Promise.all(writes)).map((r) => r?.version)).toEqual([6, 7, 8]);
      const seen = await Promise.all(reads);
      seen.forEach((r, k) => {
        expect(r!.version).toBeGreaterThanOrEqual(6 + k);
        expect(r).toEqual({
          ...sessionRecord('s1'),
          checkpoint: { step: r!.version - 1 },
          updated_at: at(r!.version),
          version: r!.version,
        });
      });
      (seen[0]!.checkpoint as { step: number }).step = -1;
      expect(seen[1]!.checkpoint).toEqual({ step: seen[1]!.version - 1 });
      expect(await s.get('s1')).toEqual({
        ...sessionRecord('s1'),
        checkpoint: { step: 7 },
        updated_at: at(8),
        version: 8,
      });
    });

    it('applies pipelined updates of different columns in one batch, each on top of the ones before', async () => {
      await s.create(
        sessionRecord('s1', { task: taskFields(), managed_by: 'node-1' }),
        sessionEvent('s1', 'session.created'),
      );
      const history = [
        { status: 'active', at: AT },
        { status: 'completed', at: at(4) },
      ] as const;
      const task = taskFields({ state: 'running', state_history: [{ state: 'running', at: at(2) }] });
      const results = await Promise.all([
        s.update('s1', 0, { checkpoint: { aip_steps: 1 }, updated_at: at(1) }, sessionEvent('s1')),
        s.update('s1', 1, { task, updated_at: at(2) }, sessionEvent('s1')),
        s.update('s1', 2, { checkpoint: { aip_steps: 2 }, updated_at: at(3) }, sessionEvent('s1')),
        s.update(
          's1',
          3,
          { status: 'completed', status_history: history, updated_at: at(4) },
          sessionEvent('s1'),
        ),
        s.update('s1', 3, { managed_by: null }, sessionEvent('s1', 'session.updated', { stale: true })),
      ]);
      expect(results.map((r) => r?.version ?? null)).toEqual([1, 2, 3, 4, null]);
      const expected = {
        ...sessionRecord('s1', { task, managed_by: 'node-1' }),
        checkpoint: { aip_steps: 2 },
        status: 'completed',
        status_history: history,
        updated_at: at(4),
        version: 4,
      };
      expect(await s.get('s1')).toEqual(expected);
      expect((await s.list({ task_name: 'task-1', managed_by: 'node-1' }, { limit: 10 })).items).toEqual([
        expected,
      ]);
      expect((await s.events('s1', 0, 100)).map((e) => e.data.stale ?? false)).toEqual([
        false,
        false,
        false,
        false,
        false,
      ]);
    });

    it('shows a read every write called before it, awaited or not', async () => {
      const created = s.create(sessionRecord('s1'), sessionEvent('s1', 'session.created'));
      const updated = s.update('s1', 0, { checkpoint: { seen: true } }, sessionEvent('s1'));
      const appended = s.appendEvents([sessionEvent('s1', 'task.commands', { n: 1 })]);
      const [got, page, log, all] = await Promise.all([
        s.get('s1'),
        s.list({}, { limit: 10 }),
        s.events('s1', 0, 10),
        s.allEvents(0, 10),
      ]);
      expect(got).toMatchObject({ checkpoint: { seen: true }, version: 1 });
      expect(page.items.map((r) => r.version)).toEqual([1]);
      expect(log.map((e) => e.type)).toEqual(['session.created', 'session.updated', 'task.commands']);
      expect(all).toEqual(log);
      expect(await created).not.toBeNull();
      expect(await updated).toMatchObject({ version: 1, event: { type: 'session.updated' } });
      expect(await appended).toHaveLength(1);
      const deleted = s.delete('s1', sessionEvent('s1', 'session.deleted'));
      expect(await s.get('s1')).toBeNull();
      expect(await deleted).not.toBeNull();
    });

    it('settles a stale write of a pipelined batch as null and commits the rest of the batch', async () => {
      await Promise.all([
        s.create(sessionRecord('a'), sessionEvent('a', 'session.created')),
        s.create(sessionRecord('b'), sessionEvent('b', 'session.created')),
      ]);
      const before = await s.allEvents(0, 100);
      const [a1, bStale, aTwice, a2, appended, c, b1, gone] = await Promise.all([
        s.update('a', 0, { checkpoint: { n: 1 } }, sessionEvent('a', 'session.updated', { n: 1 })),
        s.update('b', 7, { checkpoint: { n: 1 } }, sessionEvent('b', 'session.updated', { stale: true })),
        s.create(
          sessionRecord('a', { agent_id: 'intruder' }),
          sessionEvent('a', 'session.created', { twice: true }),
        ),
        s.update('a', 1, { checkpoint: { n: 2 } }, sessionEvent('a', 'session.updated', { n: 2 })),
        s.appendEvents([
          sessionEvent('b', 'task.commands', { n: 3 }),
          sessionEvent('a', 'task.commands', { n: 4 }),
        ]),
        s.create(sessionRecord('c'), sessionEvent('c', 'session.created', { n: 5 })),
        s.update('b', 0, { checkpoint: { n: 6 } }, sessionEvent('b', 'session.updated', { n: 6 })),
        s.delete('missing', sessionEvent('missing', 'session.deleted', { missing: true })),
      ]);
      expect(bStale).toBeNull();
      expect(aTwice).toBeNull();
      expect(gone).toBeNull();
      // a: both updates, in call order (the second names the version the first made); b: only the good one.
      expect([a1?.version, a2?.version, b1?.version]).toEqual([1, 2, 1]);
      expect(c).not.toBeNull();
      const stored = [a1!.event, a2!.event, ...appended, c!, b1!.event];
      expect(stored.map((e) => e.data.n)).toEqual([1, 2, 3, 4, 5, 6]);
      expectGrowing(stored.map((e) => e.id));
      expect(await s.allEvents(before[before.length - 1]!.id, 100)).toEqual(stored);
      // The refused create, the stale update and the update of the other session changed nothing of a or b.
      expect(await s.get('a')).toEqual({ ...sessionRecord('a'), checkpoint: { n: 2 }, version: 2 });
      expect(await s.get('b')).toEqual({ ...sessionRecord('b'), checkpoint: { n: 6 }, version: 1 });
      expect(await s.get('c')).toEqual(sessionRecord('c'));
    });

    it('applies a batch that updates, deletes and creates one id again, in call order', async () => {
      await s.create(sessionRecord('x', { context: { first: true } }), sessionEvent('x', 'session.created'));
      const second = sessionRecord('x', { agent_id: 'second', created_at: at(1), updated_at: at(1) });
      const [u1, d1, c1, u2, cTwice, cy, dy, uy] = await Promise.all([
        s.update('x', 0, { checkpoint: { n: 1 } }, sessionEvent('x', 'session.updated', { n: 1 })),
        s.delete('x', sessionEvent('x', 'session.deleted', { n: 2 })),
        s.create(second, sessionEvent('x', 'session.created', { n: 3 })),
        s.update(
          'x',
          0,
          { status: 'paused', updated_at: at(2) },
          sessionEvent('x', 'session.updated', { n: 4 }),
        ),
        s.create(sessionRecord('x'), sessionEvent('x', 'session.created', { twice: true })),
        s.create(sessionRecord('y'), sessionEvent('y', 'session.created', { n: 5 })),
        s.delete('y', sessionEvent('y', 'session.deleted', { n: 6 })),
        s.update('y', 0, { status: 'paused' }, sessionEvent('y', 'session.updated', { gone: true })),
      ]);
      expect(u1).toEqual({
        version: 1,
        event: expect.objectContaining({ session_id: 'x', data: { n: 1 } }) as unknown,
      });
      expect(u2).toEqual({
        version: 1,
        event: expect.objectContaining({ session_id: 'x', data: { n: 4 } }) as unknown,
      });
      // The second update applied to the record created again, with nothing left of the first one.
      const x = { ...second, status: 'paused', updated_at: at(2), version: 1 };
      expect(cTwice).toBeNull();
      expect(uy).toBeNull();
      expect([d1, c1, cy, dy].every((e) => e !== null)).toBe(true);
      expect(await s.get('x')).toEqual(x);
      expect(await s.get('y')).toBeNull();
      expect((await s.list({}, { limit: 10 })).items).toEqual([x]);
      const log = await s.allEvents(0, 100);
      expect(log.map((e) => `${e.session_id}:${e.type}:${String(e.data.n)}`)).toEqual([
        'x:session.created:undefined',
        'x:session.updated:1',
        'x:session.deleted:2',
        'x:session.created:3',
        'x:session.updated:4',
        'y:session.created:5',
        'y:session.deleted:6',
      ]);
      expectGrowing(log.map((e) => e.id));
    });

    it('deletes a record once, keeping its log (which goes on if the id is created again)', async () => {
      await s.create(sessionRecord('s1'), sessionEvent('s1', 'session.created'));
      await s.update('s1', 0, { checkpoint: { n: 1 } }, sessionEvent('s1'));
      const deleted = await s.delete(
        's1',
        sessionEvent('s1', 'session.deleted', { agent_id: 'agent-1', status: 'active' }),
      );
      expect(deleted).toEqual({
        id: expect.any(Number),
        session_id: 's1',
        type: 'session.deleted',
        at: AT,
        data: { agent_id: 'agent-1', status: 'active' },
      });
      expect(await s.get('s1')).toBeNull();
      expect(await s.delete('s1', sessionEvent('s1', 'session.deleted'))).toBeNull();
      expect(await s.update('s1', 1, { checkpoint: null }, sessionEvent('s1'))).toBeNull();
      expect(await s.list({}, { limit: 10 })).toEqual({ items: [], next: null });
      const log = await s.events('s1', 0, 10);
      expect(log.map((e) => e.type)).toEqual(['session.created', 'session.updated', 'session.deleted']);
      expect(log[2]).toEqual(deleted);

      const again = await s.create(sessionRecord('s1'), sessionEvent('s1', 'session.created'));
      expect(again!.id).toBeGreaterThan(deleted!.id);
      expect(await s.get('s1')).toEqual(sessionRecord('s1'));
      expect(await s.events('s1', 0, 10)).toEqual([...log, again]);
    });

    it('logs exactly one event per create, update and delete, with ids that grow across sessions', async () => {
      const returned = [
        await s.create(sessionRecord('a'), sessionEvent('a', 'session.created')),
        await s.create(sessionRecord('b'), sessionEvent('b', 'session.created')),
        (await s.update('a', 0, { status: 'paused' }, sessionEvent('a')))!.event,
        ...(await s.appendEvents([sessionEvent('b', 'task.started'), sessionEvent('a', 'task.commands')])),
        (await s.update('b', 0, { context: { k: 1 } }, sessionEvent('b')))!.event,
        await s.delete('a', sessionEvent('a', 'session.deleted')),
        await s.create(sessionRecord('c'), sessionEvent('c', 'session.created')),
        (await s.update('b', 1, { checkpoint: { k: 2 } }, sessionEvent('b')))!.event,
      ];
      const all = await s.allEvents(0, 1000);
      expect(all).toEqual(returned);
      expect(all.map((e) => `${e.session_id}:${e.type}`)).toEqual([
        'a:session.created',
        'b:session.created',
        'a:session.updated',
        'b:task.started',
        'a:task.commands',
        'b:session.updated',
        'a:session.deleted',
        'c:session.created',
        'b:session.updated',
      ]);
      expectGrowing(all.map((e) => e.id));
      expect(await s.appendEvents([])).toEqual([]);
    });

    it("pages a session's events and all events by id", async () => {
      await s.create(sessionRecord('s1'), sessionEvent('s1', 'session.created'));
      await s.create(sessionRecord('s2'), sessionEvent('s2', 'session.created'));
      await s.appendEvents(
        Array.from({ length: 10 }, (_, n) => sessionEvent(n % 2 ? 's2' : 's1', 'task.commands', { n })),
      );
      const s1 = await s.events('s1', 0, 100);
      expect(s1.map((e) => e.data.n)).toEqual([undefined, 0, 2, 4, 6, 8]);
      expect(s1.every((e) => e.session_id === 's1')).toBe(true);
      const paged: SessionEvent[] = [];
      for (let after = 0; ;) {
        const page = await s.events('s1', after, 4);
        expect(page.length).toBeLessThanOrEqual(4);
        if (page.length === 0) break;
        paged.push(...page);
        after = page[page.length - 1]!.id;
      }
      expect(paged).toEqual(s1);
      expect(await s.events('s1', s1[2]!.id, 2)).toEqual(s1.slice(3, 5));
      expect(await s.events('s1', s1[5]!.id, 10)).toEqual([]);
      expect(await s.events('nobody', 0, 10)).toEqual([]);

      const all = await s.allEvents(0, 100);
      expect(all).toHaveLength(12);
      expectGrowing(all.map((e) => e.id));
      const pagedAll: SessionEvent[] = [];
      for (let after = 0; ;) {
        const page = await s.allEvents(after, 5);
        if (page.length === 0) break;
        pagedAll.push(...page);
        after = page[page.length - 1]!.id;
      }
      expect(pagedAll).toEqual(all);
      expect(await s.allEvents(all[9]!.id, 100)).toEqual(all.slice(10));
      expect(await s.allEvents(0, 0)).toEqual([]);
      expect(await s.events('s1', 0, 0)).toEqual([]);
    });

    it('reads pages under a size budget: stops before the event past it, the first always in, and says it cut', async () => {
      const size = (n: number): JsonObject => ({ blob: 'x'.repeat(n) }); // JSON: n + 11 characters
      await s.create(sessionRecord('big'), sessionEvent('big', 'session.created', size(89))); // 100
      await s.appendEvents([
        sessionEvent('big', 'task.results', size(189)), // 200
        sessionEvent('other', 'task.results', size(5_000)),
        sessionEvent('big', 'task.results', size(289)), // 300
        sessionEvent('big', 'task.results', size(9_989)), // 10,000
        sessionEvent('big', 'task.results', size(89)), // 100
      ]);
      const log = await s.events('big', 0, 100);
      expect(log).toHaveLength(5);
      const ids = (p: { events: SessionEvent[] }): number[] => p.events.map((e) => e.id);
      // 100 + 200 + 300 = 600 fits 600 exactly; the 10,000 does not
      const first = await s.eventPage('big', 0, 100, 600);
      expect(first).toEqual({ events: log.slice(0, 3), cut: true });
      // alone past the budget: still one event a page, so a reader always gets on
      expect(ids(await s.eventPage('big', log[2]!.id, 100, 600))).toEqual([log[3]!.id]);
      expect(await s.eventPage('big', log[3]!.id, 100, 600)).toEqual({ events: log.slice(4), cut: false });
      // the count limit as before, and no cut when the budget holds everything
      expect(await s.eventPage('big', 0, 2, 1_000_000)).toEqual({ events: log.slice(0, 2), cut: false });
      expect(await s.eventPage('big', 0, 100, 1_000_000)).toEqual({ events: log, cut: false });
      expect(await s.eventPage('nobody', 0, 100, 600)).toEqual({ events: [], cut: false });
      // every session's log: 'other' (5,011) comes third
      const all = await s.allEvents(0, 100);
      const allPage = await s.eventPage(null, 0, 100, 5_000);
      expect(allPage).toEqual({ events: all.slice(0, 2), cut: true });
      expect(ids(await s.eventPage(null, all[1]!.id, 100, 10))).toEqual([all[2]!.id]);
    });

    it('trims each log to maxEventsPerSession, oldest first, in the write that grows it', async () => {
      const small = await fresh(5);
      await small.create(sessionRecord('s1'), sessionEvent('s1', 'session.created', { n: 0 }));
      await small.create(sessionRecord('s2'), sessionEvent('s2', 'session.created'));
      // One write of 7 takes the log from 1 to 8: the oldest 3 go, the created event among them.
      const appended = await small.appendEvents(
        Array.from({ length: 7 }, (_, k) => sessionEvent('s1', 'task.commands', { n: k + 1 })),
      );
      let log = await small.events('s1', 0, 100);
      expect(log.map((e) => e.data.n)).toEqual([3, 4, 5, 6, 7]);
      expect(log).toEqual(appended.slice(2));
      // Pipelined updates trim as they go.
      await Promise.all(
        [0, 1, 2].map((v) =>
          small.update('s1', v, { checkpoint: { v } }, sessionEvent('s1', 'session.updated', { n: 10 + v })),
        ),
      );
      log = await small.events('s1', 0, 100);
      expect(log.map((e) => e.data.n)).toEqual([6, 7, 10, 11, 12]);
      // A trimmed event is gone from every view; other logs keep theirs.
      const all = await small.allEvents(0, 100);
      expect(all.filter((e) => e.session_id === 's1')).toEqual(log);
      expect(await small.events('s2', 0, 100)).toHaveLength(1);
      // Ids go on growing.
      const [later] = await small.appendEvents([sessionEvent('s2', 'task.commands')]);
      expect(later!.id).toBeGreaterThan(Math.max(...all.map((e) => e.id)));
      // A log can be trimmed to its newest few in a single batch of many.
      await Promise.all(
        Array.from({ length: 20 }, (_, k) => small.appendEvents([sessionEvent('s2', 'task.results', { k })])),
      );
      expect((await small.events('s2', 0, 100)).map((e) => e.data.k)).toEqual([15, 16, 17, 18, 19]);
    });

    describe('list', () => {
      const rec = (
        id: string,
        created: number,
        updated: number,
        over: Partial<SessionRecord>,
      ): SessionRecord => sessionRecord(id, { created_at: at(created), updated_at: at(updated), ...over });
      const records = [
        rec('a', 1, 10, { agent_id: 'A', session_type: 'chat', status: 'active' }),
        rec('b', 2, 3, {
          agent_id: 'A',
          session_type: 'task',
          status: 'completed',
          managed_by: 'node-1',
          task: taskFields({ task_name: 't1', requester: 'r1', executor: 'A' }),
        }),
        rec('c', 3, 12, {
          agent_id: 'B',
          session_type: 'task',
          status: 'failed',
          managed_by: 'node-1',
          task: taskFields({ task_name: 't2', requester: 'r1', executor: 'B' }),
        }),
        rec('d', 4, 5, { agent_id: 'B', session_type: 'chat', status: 'paused', managed_by: 'node-2' }),
        rec('e', 5, 6, {
          agent_id: 'C',
          session_type: 'task',
          status: 'active',
          managed_by: 'node-2',
          task: taskFields({ task_name: 't1', requester: 'r2', executor: 'C' }),
        }),
      ];
      const cases: [SessionFilter, string[]][] = [
        [{}, ['e', 'd', 'c', 'b', 'a']],
        [{ agent_id: 'A' }, ['b', 'a']],
        [{ agent_id: 'nobody' }, []],
        [{ status: ['active'] }, ['e', 'a']],
        [{ status: ['completed', 'failed'] }, ['c', 'b']],
        [{ status: [] }, []],
        [{ session_type: 'task' }, ['e', 'c', 'b']],
        [{ created_after: at(2) }, ['e', 'd', 'c']],
        [{ created_before: at(3) }, ['b', 'a']],
        [{ created_after: at(1), created_before: at(5) }, ['d', 'c', 'b']],
        [{ updated_after: at(5) }, ['e', 'c', 'a']],
        [{ updated_before: at(6) }, ['d', 'b']],
        [{ updated_after: at(3), updated_before: at(12) }, ['e', 'd', 'a']],
        [{ managed_by: 'node-1' }, ['c', 'b']],
        [{ requester: 'r1' }, ['c', 'b']],
        [{ executor: 'C' }, ['e']],
        [{ task_name: 't1' }, ['e', 'b']],
        [{ session_type: 'task', managed_by: 'node-2' }, ['e']],
        [{ agent_id: 'B', status: ['failed', 'paused'], created_after: at(3) }, ['d']],
        [{ task_name: 't1', requester: 'r2' }, ['e']],
        [{ requester: 'r1', updated_after: at(4) }, ['c']],
        [{ session_type: 'chat', executor: 'A' }, []],
      ];

      it('filters on every field of SessionFilter, alone and combined, newest first', async () => {
        await Promise.all(records.map((r) => s.create(r, sessionEvent(r.id, 'session.created'))));
        for (const [filter, ids] of cases) {
          const page = await s.list(filter, { limit: 100 });
          expect(
            page.items.map((r) => r.id),
            JSON.stringify(filter),
          ).toEqual(ids);
          expect(page.next).toBeNull();
          // The helper the in-memory store filters with agrees.
          expect(
            records
              .filter((r) => matchesFilter(r, filter))
              .sort(newestFirst)
              .map((r) => r.id),
          ).toEqual(ids);
        }
        expect((await s.list({}, { limit: 100 })).items).toEqual([...records].reverse());
      });

      it('filters on what updates changed', async () => {
        await Promise.all(records.map((r) => s.create(r, sessionEvent(r.id, 'session.created'))));
        await s.update('a', 0, { agent_id: 'B', status: 'paused', updated_at: at(20) }, sessionEvent('a'));
        await s.update(
          'c',
          0,
          { task: taskFields({ task_name: 't9', requester: 'r9', executor: 'X' }), managed_by: null },
          sessionEvent('c'),
        );
        await s.update('e', 0, { task: null, session_type: 'chat' }, sessionEvent('e'));
        const ids = async (f: SessionFilter): Promise<string[]> =>
          (await s.list(f, { limit: 100 })).items.map((r) => r.id);
        expect(await ids({ agent_id: 'B' })).toEqual(['d', 'c', 'a']);
        expect(await ids({ status: ['paused'] })).toEqual(['d', 'a']);
        expect(await ids({ updated_after: at(12) })).toEqual(['a']);
        expect(await ids({ task_name: 't9', requester: 'r9', executor: 'X' })).toEqual(['c']);
        expect(await ids({ requester: 'r1' })).toEqual(['b']);
        expect(await ids({ managed_by: 'node-1' })).toEqual(['b']);
        expect(await ids({ task_name: 't1' })).toEqual(['b']);
        expect(await ids({ session_type: 'chat' })).toEqual(['e', 'd', 'a']);
      });

      it('counts by session type and status among the statuses asked, with pending writes and deletes in', async () => {
        const counted = async (statuses: SessionStatus[]): Promise<string[]> =>
          (await s.count(statuses)).map((c) => `${c.session_type}/${c.status}=${c.count}`).sort();
        await Promise.all(records.map((r) => s.create(r, sessionEvent(r.id, 'session.created'))));
        expect(await counted(['active', 'paused'])).toEqual([
          'chat/active=1',
          'chat/paused=1',
          'task/active=1',
        ]);
        expect(await counted(['completed', 'failed', 'active'])).toEqual([
          'chat/active=1',
          'task/active=1',
          'task/completed=1',
          'task/failed=1',
        ]);
        expect(await counted([])).toEqual([]);
        expect(await counted(['crashed'])).toEqual([]);
        // Not awaited: a count sees every write called before it, as a read does.
        void s.create(rec('f', 6, 6, { session_type: 'task', status: 'active' }), sessionEvent('f'));
        void s.update('a', 0, { session_type: 'task', updated_at: at(30) }, sessionEvent('a'));
        void s.delete('d', sessionEvent('d', 'session.deleted'));
        expect(await counted(['active', 'paused'])).toEqual(['task/active=3']);
        // The same count as listing the records and counting them.
        const listed = (await s.list({ status: ['active', 'paused'] }, { limit: 100 })).items;
        expect(listed.filter((r) => r.session_type === 'task' && r.status === 'active')).toHaveLength(3);
        expect(listed).toHaveLength(3);
      });

      it('pages 120 records newest first by cursor, with no duplicate or gap, and ends with next null', async () => {
        // 40 creation times, 3 records each, whose ids do not sort like their creation order.
        const many = Array.from({ length: 120 }, (_, n) =>
          sessionRecord(`s-${((n * 37) % 120).toString().padStart(3, '0')}`, {
            created_at: at(Math.floor(n / 3)),
            status: n % 2 ? 'active' : 'paused',
          }),
        );
        await Promise.all(many.map((r) => s.create(r, sessionEvent(r.id, 'session.created'))));
        const expected = [...many].sort(newestFirst).map((r) => r.id);

        const pageAll = async (
          filter: SessionFilter,
          limit: number,
        ): Promise<{ ids: string[]; sizes: number[] }> => {
          const ids: string[] = [];
          const sizes: number[] = [];
          let cursor: string | null = null;
          do {
            const page: Page = await s.list(filter, { limit, cursor });
            ids.push(...page.items.map((r) => r.id));
            sizes.push(page.items.length);
            cursor = page.next;
          } while (cursor !== null && sizes.length < 100);
          return { ids, sizes };
        };
        const all = await pageAll({}, 50);
        expect(all.sizes).toEqual([50, 50, 20]);
        expect(all.ids).toEqual(expected);
        expect(new Set(all.ids).size).toBe(120);

        const active = await pageAll({ status: ['active'] }, 25);
        expect(active.sizes).toEqual([25, 25, 10]);
        expect(active.ids).toEqual(
          many
            .filter((r) => r.status === 'active')
            .sort(newestFirst)
            .map((r) => r.id),
        );

        expect(await pageAll({}, 120)).toEqual({ ids: expected, sizes: [120] });
        const exact = await s.list({}, { limit: 60 });
        const rest = await s.list({}, { limit: 60, cursor: exact.next });
        expect(rest.items).toHaveLength(60);
        expect(rest.next).toBeNull();
      });
    });

    it('returns JSON fields exactly as given: nesting, nulls, unicode, large strings, key order', async () => {
      const context = {
        z: 1,
        a: { deep: [1, 2.5, -3e-7, 2 ** 53 - 1, true, false, null, 'x', { k: [[]], '': {} }] },
        'ключ 键 🔑': 'emoji 🎉, é, 中文, עברית, \u200b',
        nul: 'a\u0000b',
        lone: '\ud800x\udfff',
        escapes: '"\'\\\n\t\r/',
        big: 'x'.repeat(1_000_000),
      };
      const task = taskFields({
        state: 'failed',
        state_history: [
          { state: 'created', at: AT },
          { state: 'failed', at: at(1), reason: 'boom' },
        ],
        result: [1, { a: null, b: [{}] }, 'two', [true]],
        error: 'boom',
        requester_notified: true,
      });
      const r = sessionRecord('j1', {
        context,
        checkpoint: null,
        runtime_metadata: { pod: { name: 'p', labels: { b: '2', a: '1' } } },
        status_history: [
          { status: 'active', at: AT },
          { status: 'paused', at: at(1), reason: 'user' },
          { status: 'active', at: at(2) },
        ],
        task,
        managed_by: 'node-1',
      });
      const created = await s.create(
        r,
        sessionEvent('j1', 'session.created', { nested: { b: [1], a: 'é🎉' } }),
      );
      const got = await s.get('j1');
      expect(got).toEqual(r);
      expect(JSON.stringify(got)).toBe(JSON.stringify(r));
      expect(JSON.stringify((await s.events('j1', 0, 10))[0])).toBe(JSON.stringify(created));

      let version = 0;
      for (const result of ['plain', 42, -0.5, null, { x: [{ y: 'z' }] }, true, []]) {
        const res = await s.update(
          'j1',
          version++,
          { task: { ...task, result } },
          sessionEvent('j1', 'task.ended', { result }),
        );
        expect(res!.version).toBe(version);
        expect((await s.get('j1'))!.task).toEqual({ ...task, result });
        expect(res!.event.data).toEqual({ result });
      }
      const withCheckpoint = await s.update(
        'j1',
        version++,
        { checkpoint: { step: 3, blob: 'y'.repeat(300) } },
        sessionEvent('j1'),
      );
      expect(withCheckpoint!.version).toBe(version);
      expect((await s.get('j1'))!.checkpoint).toEqual({ step: 3, blob: 'y'.repeat(300) });
      const cleared = await s.update('j1', version, { checkpoint: null, task: null }, sessionEvent('j1'));
      expect(cleared!.version).toBe(version + 1);
      // Everything else as given, in the same order, after all these updates.
      const final = { ...r, checkpoint: null, task: null, version: version + 1 };
      expect(await s.get('j1')).toEqual(final);
      expect(JSON.stringify(await s.get('j1'))).toBe(JSON.stringify(final));
    });

    it('hands out values: changing what went in or came out changes nothing stored', async () => {
      const r = sessionRecord('s1', { context: { list: [1] } });
      const created = sessionEvent('s1', 'session.created', { list: [1] });
      const pending = s.create(r, created);
      (r.context.list as number[]).push(2);
      (r as { agent_id: string }).agent_id = 'changed';
      (created.data.list as number[]).push(2);
      const event = await pending;
      expect(event!.data).toEqual({ list: [1] });
      expect(await s.get('s1')).toEqual(sessionRecord('s1', { context: { list: [1] } }));

      const changes = { checkpoint: { step: [1] } };
      const updating = s.update('s1', 0, changes, sessionEvent('s1'));
      changes.checkpoint.step.push(2);
      const res = await updating;
      expect(res!.version).toBe(1);

      tamper(() => ((res!.event.data as { x?: number }).x = 1));
      tamper(() => (event!.data.list as number[]).push(3));
      const expected = {
        ...sessionRecord('s1', { context: { list: [1] } }),
        checkpoint: { step: [1] },
        version: 1,
      };
      const got = (await s.get('s1'))!;
      expect(got).toEqual(expected);
      (got.context.list as number[]).push(4);
      (got.checkpoint!.step as number[]).push(4);
      (got.status_history as StatusEntry[]).push({ status: 'failed', at: AT });
      (got as { version: number }).version = 9;
      expect(await s.get('s1')).toEqual(expected);
      const log = await s.events('s1', 0, 10);
      expect(log.map((e) => e.data)).toEqual([{ list: [1] }, {}]);
      tamper(() => (log[0]!.data.list as number[]).push(5));
      expect((await s.events('s1', 0, 10))[0]!.data).toEqual({ list: [1] });
      const all = await s.allEvents(0, 10);
      tamper(() => ((all[1]!.data as { x?: number }).x = 2));
      expect((await s.allEvents(0, 10)).map((e) => e.data)).toEqual([{ list: [1] }, {}]);
      const page = await s.list({}, { limit: 10 });
      (page.items[0]!.context.list as number[]).push(6);
      expect((await s.get('s1'))!.context).toEqual({ list: [1] });
    });

    if (fixture.reopen && fixture.setSchemaVersion) {
      const setSchemaVersion = fixture.setSchemaVersion.bind(fixture);
      const version = fixture.schemaVersion ?? SCHEMA_VERSION;

      it('keeps everything across close and open, writes not awaited before close included', async () => {
        await s.create(sessionRecord('a', { context: { k: 'v' } }), sessionEvent('a', 'session.created'));
        await s.create(
          sessionRecord('b', { created_at: at(1), task: taskFields(), managed_by: 'node-1' }),
          sessionEvent('b', 'session.created'),
        );
        await Promise.all([
          s.update('a', 0, { checkpoint: { n: 1 } }, sessionEvent('a')),
          s.update('a', 1, { checkpoint: { n: 2 } }, sessionEvent('a')),
        ]);
        await s.create(sessionRecord('c', { created_at: at(2) }), sessionEvent('c', 'session.created'));
        await s.delete('c', sessionEvent('c', 'session.deleted'));
        await s.appendEvents([sessionEvent('b', 'task.commands', { n: 1 })]);
        const before = {
          a: await s.get('a'),
          b: await s.get('b'),
          page: await s.list({}, { limit: 10 }),
          log: await s.events('a', 0, 100),
          all: await s.allEvents(0, 100),
        };
        // Not awaited: close commits it.
        const last = s.update(
          'a',
          2,
          { status: 'paused' },
          sessionEvent('a', 'session.updated', { last: true }),
        );
        const s2 = await reopen(s);
        const lastDone = await last;
        expect(lastDone!.version).toBe(3);
        await s2.open();
        const a = { ...before.a!, status: 'paused', version: 3 };
        expect(before.a).toMatchObject({ checkpoint: { n: 2 }, version: 2 });
        expect(await s2.get('a')).toEqual(a);
        expect(await s2.get('b')).toEqual(before.b);
        expect(await s2.get('c')).toBeNull();
        expect((await s2.list({}, { limit: 10 })).items).toEqual([before.b, a]);
        expect(await s2.list({ managed_by: 'node-1' }, { limit: 10 })).toEqual({
          items: [before.b],
          next: null,
        });
        expect(await s2.events('a', 0, 100)).toEqual([...before.log, lastDone!.event]);
        expect(await s2.allEvents(0, 100)).toEqual([...before.all, lastDone!.event]);
        expect(before.page.items.map((r) => r.id)).toEqual(['b', 'a']);

        // Versions and event ids go on from where they were.
        expect(await s2.update('a', 2, { status: 'active' }, sessionEvent('a'))).toBeNull();
        const next = await s2.update('a', 3, { status: 'active' }, sessionEvent('a'));
        expect(next!.version).toBe(4);
        expect((await s2.get('a'))!.status).toBe('active');
        expect(next!.event.id).toBeGreaterThan(lastDone!.event.id);
        expect(await s2.create(sessionRecord('a'), sessionEvent('a', 'session.created'))).toBeNull();
      });

      it('refuses a database whose schema version is newer than it knows, and leaves it as it was', async () => {
        await s.create(sessionRecord('a'), sessionEvent('a', 'session.created'));
        await s.close();
        await setSchemaVersion(s, 999);
        const newer = await reopen(s);
        await expect(newer.open()).rejects.toThrow(
          `database schema version 999 is newer than this aipd supports (${version}); upgrade aipd`,
        );
        await setSchemaVersion(s, version);
        const back = await reopen(s);
        await back.open();
        expect(await back.get('a')).toEqual(sessionRecord('a'));
      });
    }
  });
}
