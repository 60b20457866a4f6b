/**
 * The shared conformance suite of the state interfaces. Every implementation (memory today; SQLite, PostgreSQL
 * and Redis as they land) runs exactly these tests through its own `*.test.ts`, so they behave as one.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ServerMessageInput } from '../../protocol/index.js';
import type { ClientDirectory, ClientInfo, ClientLink } from '../../src/state/client-directory.js';
import type { SessionRecord, SessionStore } from '../../src/state/session-store.js';
import type { TaskResultStore } from '../../src/state/task-results.js';

export interface Fixture<T> {
  make(): Promise<T> | T;
  /** Frees what `make` created (connections, databases). */
  dispose?(impl: T): Promise<void> | void;
}

function withImpl<T>(fixture: Fixture<T>): () => T {
  let impl: T | null = null;
  beforeEach(async () => {
    impl = await fixture.make();
  });
  afterEach(async () => {
    if (impl !== null) await fixture.dispose?.(impl);
    impl = null;
  });
  return () => impl!;
}

export function sessionRecord(id: string, over: Partial<SessionRecord> = {}): SessionRecord {
  const at = '2026-01-01T00:00:00.000Z';
  return {
    id,
    taskName: `task-${id}`,
    ownerId: 'owner-1',
    executorId: 'dev-1',
    platform: 'linux',
    mode: 'service',
    state: 'created',
    createdAt: at,
    updatedAt: at,
    history: [{ state: 'created', at }],
    ...over,
  };
}

export function sessionStoreSuite(name: string, fixture: Fixture<SessionStore>): void {
  describe(`SessionStore conformance: ${name}`, () => {
    const store = withImpl(fixture);

    it('creates, gets, and refuses a second create of the same id without changing the first', async () => {
      expect(await store().create(sessionRecord('s1'))).toBe(true);
      expect(await store().create(sessionRecord('s1', { ownerId: 'intruder' }))).toBe(false);
      expect(await store().get('s1')).toEqual(sessionRecord('s1'));
      expect(await store().get('missing')).toBeNull();
    });

    it('appends status changes to the history, oldest first, and moves state and updatedAt', async () => {
      await store().create(sessionRecord('s1'));
      await store().appendStatus('s1', { state: 'running', at: '2026-01-01T00:00:01.000Z' });
      const rec = await store().appendStatus('s1', {
        state: 'failed',
        at: '2026-01-01T00:00:02.000Z',
        reason: 'boom',
      });
      expect(rec).toMatchObject({ state: 'failed', updatedAt: '2026-01-01T00:00:02.000Z' });
      expect((await store().get('s1'))!.history).toEqual([
        { state: 'created', at: '2026-01-01T00:00:00.000Z' },
        { state: 'running', at: '2026-01-01T00:00:01.000Z' },
        { state: 'failed', at: '2026-01-01T00:00:02.000Z', reason: 'boom' },
      ]);
      expect(
        await store().appendStatus('missing', { state: 'running', at: '2026-01-01T00:00:01.000Z' }),
      ).toBeNull();
    });

    it('lists in creation order with owner, executor, state and limit filters', async () => {
      await store().create(sessionRecord('a', { ownerId: 'o1', executorId: 'd1' }));
      await store().create(sessionRecord('b', { ownerId: 'o2', executorId: 'd1' }));
      await store().create(sessionRecord('c', { ownerId: 'o1', executorId: 'd2' }));
      await store().appendStatus('c', { state: 'running', at: '2026-01-01T00:00:01.000Z' });
      const ids = async (f?: Parameters<SessionStore['list']>[0]) => (await store().list(f)).map((r) => r.id);
      expect(await ids()).toEqual(['a', 'b', 'c']);
      expect(await ids({ ownerId: 'o1' })).toEqual(['a', 'c']);
      expect(await ids({ executorId: 'd1' })).toEqual(['a', 'b']);
      expect(await ids({ states: ['running'] })).toEqual(['c']);
      expect(await ids({ states: ['created', 'running'], limit: 2 })).toEqual(['a', 'b']);
      expect(await ids({ ownerId: 'o1', executorId: 'd1' })).toEqual(['a']);
    });

    it('deletes once', async () => {
      await store().create(sessionRecord('s1'));
      expect(await store().delete('s1')).toBe(true);
      expect(await store().delete('s1')).toBe(false);
      expect(await store().get('s1')).toBeNull();
      expect(await store().list()).toEqual([]);
    });

    it('hands out values: changing what it returned changes nothing stored', async () => {
      const rec = sessionRecord('s1');
      await store().create(rec);
      (rec as { ownerId: string }).ownerId = 'changed';
      const got = (await store().get('s1'))!;
      try {
        (got as { state: string }).state = 'changed';
        (got.history as unknown as { state: string }[]).push({ state: 'x' });
      } catch {
        // frozen values may throw in strict mode; either way the store must be unchanged
      }
      expect(await store().get('s1')).toEqual(sessionRecord('s1'));
    });
  });
}

export function taskResultStoreSuite(name: string, fixture: Fixture<TaskResultStore>): void {
  describe(`TaskResultStore conformance: ${name}`, () => {
    const store = withImpl(fixture);

    it('keeps the latest entry per task name', async () => {
      expect(await store().get('t')).toBeUndefined();
      await store().set('t', { status: 'pending', session_id: 's1' });
      expect(await store().get('t')).toEqual({ status: 'pending', session_id: 's1' });
      const done = {
        status: 'done',
        session_id: 's1',
        result: { ok: [1, 2] },
        task_status: 'completed',
        error: null,
      } as const;
      await store().set('t', done);
      expect(await store().get('t')).toEqual(done);
    });

    it('resolves aliases to task names', async () => {
      expect(await store().resolveAlias('d-1')).toBeUndefined();
      await store().alias('d-1', 'task-a');
      expect(await store().resolveAlias('d-1')).toBe('task-a');
    });
  });
}

/** A link that records what it was sent. */
export class RecordingLink implements ClientLink {
  readonly sent: ServerMessageInput[] = [];
  closed = false;
  constructor(readonly id: string) {}
  send(msg: ServerMessageInput): boolean {
    if (this.closed) return false;
    this.sent.push(msg);
    return true;
  }
  sendRaw(): boolean {
    return !this.closed;
  }
  bufferedBytes(): number {
    return 0;
  }
  close(): void {
    this.closed = true;
  }
}

export function clientInfo(id: string, over: Partial<ClientInfo> = {}): ClientInfo {
  return {
    clientId: id,
    clientType: 'device',
    targetId: null,
    platform: 'linux',
    metadata: {},
    systemInfo: null,
    connectedAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}

export function clientDirectorySuite(name: string, fixture: Fixture<ClientDirectory>): void {
  describe(`ClientDirectory conformance: ${name}`, () => {
    const dir = withImpl(fixture);

    it('registers, finds and reaches a client, and refuses a duplicate without touching the original', async () => {
      const a = new RecordingLink('conn-a');
      const b = new RecordingLink('conn-b');
      expect(await dir().register(clientInfo('dev-1'), a)).toBe(true);
      expect(await dir().register(clientInfo('dev-1', { platform: 'windows' }), b)).toBe(false);
      expect(dir().get('dev-1')).toMatchObject({ clientId: 'dev-1', platform: 'linux' });
      expect(dir().link('dev-1')).toBe(a);
      expect(dir().clientOf(a)?.clientId).toBe('dev-1');
      expect(dir().clientOf(b)).toBeUndefined();
      dir().link('dev-1')!.send({ type: 'heartbeat', status: 'ok' });
      expect(a.sent).toHaveLength(1);
      expect(b.sent).toHaveLength(0);
    });

    it('unregisters only through the link that registered', async () => {
      const a = new RecordingLink('conn-a');
      await dir().register(clientInfo('dev-1'), a);
      expect(await dir().unregister('dev-1', new RecordingLink('other'))).toBe(false);
      expect(dir().get('dev-1')).toBeDefined();
      expect(await dir().unregister('dev-1', a)).toBe(true);
      expect(dir().get('dev-1')).toBeUndefined();
      expect(dir().link('dev-1')).toBeUndefined();
      expect(await dir().register(clientInfo('dev-1'), new RecordingLink('conn-c'))).toBe(true);
    });

    it('lists in registration order and counts roles', async () => {
      await dir().register(clientInfo('dev-1'), new RecordingLink('1'));
      await dir().register(
        clientInfo('k@dev-1', { clientType: 'constellation', targetId: 'dev-1' }),
        new RecordingLink('2'),
      );
      await dir().register(clientInfo('dev-2'), new RecordingLink('3'));
      expect(dir().list()).toEqual(['dev-1', 'k@dev-1', 'dev-2']);
      expect(dir().stats()).toEqual({ total: 3, device_clients: 2, constellation_clients: 1 });
      expect([...dir().all()].map((c) => c.clientId)).toEqual(['dev-1', 'k@dev-1', 'dev-2']);
    });
  });
}
