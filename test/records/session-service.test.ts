/** The session service over the memory store: the write path's refusals, merge patch, and its one event per write. */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { mergePatch } from '../../src/records/merge-patch.js';
import { applyChanges, SessionService } from '../../src/records/session-service.js';
import { MemorySessionStore } from '../../src/state/memory-session-store.js';

function service(): SessionService {
  return new SessionService(new MemorySessionStore({ maxEventsPerSession: 100 }), silentLogger(), {
    maxEventDataBytes: 1024,
  });
}

describe('SessionService', () => {
  it('refuses a write to a session that does not exist, and to one deleted meanwhile, without looping', async () => {
    const s = service();
    await expect(s.patch('missing', { context: { a: 1 } })).rejects.toMatchObject({
      kind: 'HTTP_SESSION_NOT_FOUND',
    });
    await s.create(s.recordFrom({ agent_id: 'a', session_type: 't' }, 'x'));
    await s.delete('x');
    await expect(s.patch('x', { context: { a: 1 } })).rejects.toMatchObject({
      kind: 'HTTP_SESSION_NOT_FOUND',
    });
  });

  it('checks status changes against the table and records them with the same instant as updated_at', async () => {
    const s = service();
    await s.create(s.recordFrom({ agent_id: 'a', session_type: 't' }, 'x'));
    const crashed = await s.patch('x', { status: 'crashed', reason: 'agent died' });
    expect(crashed.status_history.map((h) => h.status)).toEqual(['active', 'crashed']);
    expect(crashed.status_history[1]).toMatchObject({ reason: 'agent died', at: crashed.updated_at });
    await expect(s.patch('x', { status: 'paused' })).rejects.toMatchObject({
      kind: 'SESSION_ILLEGAL_STATUS',
      message: "Cannot change session status from 'crashed' to 'paused'",
    });
    const done = await s.patch('x', { status: 'failed' });
    await expect(s.patch('x', { status: 'active' })).rejects.toMatchObject({
      kind: 'SESSION_ILLEGAL_STATUS',
    });
    expect(done.status).toBe('failed');
  });

  it('merges context (RFC 7396), replaces checkpoint, and writes exactly one event per write', async () => {
    const s = service();
    await s.create(
      s.recordFrom(
        {
          agent_id: 'a',
          session_type: 't',
          context: { keep: 1, drop: 2, nested: { a: 1, b: 2 }, list: [1, 2] },
        },
        'x',
      ),
    );
    await s.patch('x', {
      context: { drop: null, nested: { b: null, c: 3 }, list: [9] },
      checkpoint: { step: 1 },
    });
    await s.patch('x', { checkpoint: { other: true } });
    const rec = (await s.get('x'))!;
    expect(rec.context).toEqual({ keep: 1, nested: { a: 1, c: 3 }, list: [9] });
    expect(rec.checkpoint).toEqual({ other: true });
    const events = await s.events('x', 0, 100);
    expect(events.map((e) => e.type)).toEqual(['session.created', 'session.updated', 'session.updated']);
    expect(events[1]!.data).toMatchObject({ updates: ['context', 'checkpoint'] });
  });

  it('treats a __proto__ key in a merge patch as data', () => {
    const merged = mergePatch({ a: 1 }, JSON.parse('{"__proto__": {"polluted": true}}')) as Record<
      string,
      unknown
    >;
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(Object.keys(merged)).toEqual(['a', '__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('replaces an oversized event payload with a note of its size', async () => {
    const s = service();
    await s.create(s.recordFrom({ agent_id: 'a', session_type: 't' }, 'x'));
    await s.appendEvents([s.event('x', 'task.commands', { tools: ['t'.repeat(5000)] })]);
    const [, big] = await s.events('x', 0, 10);
    expect(big!.data).toEqual({
      truncated: true,
      bytes: JSON.stringify({ tools: ['t'.repeat(5000)] }).length,
    });
  });
});

describe('applyChanges', () => {
  it('gives the record with the changes, keeps keys given as undefined, sets nulls, and keeps id and created_at', () => {
    const cur = {
      ...service().recordFrom({ agent_id: 'a', session_type: 't', checkpoint: { n: 1 } }, 'id-1'),
      version: 4,
    };
    const next = applyChanges(
      cur,
      { checkpoint: null, updated_at: 'later', status: undefined, context: { k: 1 } },
      5,
    );
    expect(next).toEqual({ ...cur, checkpoint: null, updated_at: 'later', context: { k: 1 }, version: 5 });
    expect(Object.keys(next)).toEqual(Object.keys(cur));
    expect(cur.checkpoint).toEqual({ n: 1 });
  });
});
