/** The state conformance suites over the in-memory implementations, plus what is particular to them. */
import { describe, expect, it, vi } from 'vitest';
import { approxBytes } from '../../src/state/approx-bytes.js';
import { EventBus } from '../../src/state/events.js';
import { MemoryClientDirectory } from '../../src/state/memory-client-directory.js';
import { MemorySessionStore } from '../../src/state/memory-session-store.js';
import type { UpdateResult } from '../../src/state/session-store.js';
import { clientDirectorySuite } from './directory-suite.js';
import { sessionEvent, sessionRecord, sessionStoreSuite, taskFields } from './session-store-suite.js';

sessionStoreSuite('memory', { make: (opts) => new MemorySessionStore(opts) });
clientDirectorySuite('memory', { make: () => new MemoryClientDirectory() });

describe('MemorySessionStore byte budget for ended sessions', () => {
  it('holds its budget however large the results, forgetting the oldest ended sessions and never a live one', async () => {
    const budget = 50 * 1024 * 1024;
    const store = new MemorySessionStore({ maxEventsPerSession: 100, maxEndedBytes: budget });
    const shot = 'A'.repeat(10 * 1024 * 1024); // a 10 MB screenshot-like result (20 MiB as UTF-16)
    await store.create(sessionRecord('live'), sessionEvent('live', 'session.created'));
    for (let i = 0; i < 20; i++) {
      const id = `t${i}`;
      await store.create(sessionRecord(id, { task: taskFields() }), sessionEvent(id, 'session.created'));
      const done = await store.update(
        id,
        0,
        { status: 'completed', task: taskFields({ result: { shot } }) },
        sessionEvent(id),
      );
      expect(done).toMatchObject({ version: 1 });
    }
    expect(store.endedSessionBytes).toBeLessThanOrEqual(budget);
    expect(await store.get('t0')).toBeNull();
    expect(await store.events('t0', 0, 10)).toEqual([]);
    expect((await store.get('t19'))?.status).toBe('completed');
    expect((await store.get('live'))?.status).toBe('active');
  });

  it('estimates strings at two bytes a unit and counts nested nodes', () => {
    expect(approxBytes('abcd')).toBe(16 + 8);
    expect(approxBytes({ a: [1, 'xy'] })).toBe(16 + (16 + 2) + 16 + 8 + (16 + 4));
  });
});

describe('MemorySessionStore copies', () => {
  it('copies only what an update changes, never the record, and keeps events as JSON: each reader gets its own copy', async () => {
    const store = new MemorySessionStore();
    const task = taskFields({ request: 'x'.repeat(100_000) });
    await store.create(sessionRecord('s1', { task }), sessionEvent('s1', 'session.created'));
    const checkpoint = { aip_steps: 1 };
    const data = { step: 0, results: [{ ok: true }] };
    const clone = vi.spyOn(globalThis, 'structuredClone');
    let res: UpdateResult | null;
    try {
      res = await store.update(
        's1',
        0,
        { checkpoint, updated_at: '2026-01-01T00:00:01.000Z' },
        sessionEvent('s1', 'task.results', data),
      );
      // The checkpoint is copied; the event's data is kept as its JSON text (no structured copy).
      expect(clone.mock.calls.map((c) => c[0])).toEqual([checkpoint]);
    } finally {
      clone.mockRestore();
    }
    expect(res?.version).toBe(1);
    const event = res!.event;
    expect(event.data).toEqual(data);
    expect(event.data).not.toBe(data);
    // What the writer changes afterwards, and what a reader changes in its copy, changes nothing stored.
    data.results.push({ ok: false });
    (event.data.results as unknown[]).push('changed by a reader');
    const [, fromLog] = await store.events('s1', 0, 10);
    const [, fromAll] = await store.allEvents(0, 10);
    for (const e of [fromLog!, fromAll!]) {
      expect(e).not.toBe(event);
      expect(e).toEqual({ ...event, data: { step: 0, results: [{ ok: true }] } });
    }
    expect(fromLog!.data).not.toBe(fromAll!.data);
    expect(await store.get('s1')).toEqual({
      ...sessionRecord('s1', { task }),
      checkpoint,
      updated_at: '2026-01-01T00:00:01.000Z',
      version: 1,
    });
  });
});

describe('EventBus', () => {
  it('delivers to every subscriber of a type and to onAny, and stops after unsubscribe', () => {
    const bus = new EventBus();
    const seen: string[] = [];
    const off = bus.on('client.gone', (e) => seen.push(`one:${e.clientId}`));
    bus.on('client.gone', (e) => seen.push(`two:${e.clientId}`));
    bus.onAny((e) => seen.push(`any:${e.type}`));
    expect(bus.wants('client.gone')).toBe(true);
    bus.emit('client.gone', { clientId: 'd', clientType: 'device', reason: 'disconnected', code: 1006 });
    off();
    bus.emit('client.gone', { clientId: 'e', clientType: 'device', reason: 'disconnected', code: 1006 });
    expect(seen).toEqual(['one:d', 'two:d', 'any:client.gone', 'two:e', 'any:client.gone']);
  });

  it('keeps going when a subscriber throws, and reports it', () => {
    const errors: string[] = [];
    const bus = new EventBus((err, type) => errors.push(`${type}:${(err as Error).message}`));
    const seen: string[] = [];
    bus.on('session.ended', () => {
      throw new Error('bad listener');
    });
    bus.on('session.ended', (e) => seen.push(e.sessionId));
    bus.emit('session.ended', { sessionId: 's1', taskName: 't', status: 'completed', error: null });
    expect(seen).toEqual(['s1']);
    expect(errors).toEqual(['session.ended:bad listener']);
  });

  it('wants nothing with no subscriber', () => {
    expect(new EventBus().wants('command.sent')).toBe(false);
  });

  it('a subscriber added or removed during a delivery takes effect from the next event', () => {
    const bus = new EventBus();
    const seen: string[] = [];
    let offB: () => void = () => undefined;
    const ev = { clientId: 'c', clientType: 'device' as const, reason: 'disconnected' as const, code: 1000 };
    bus.on('client.gone', () => {
      seen.push('a');
      offB();
      bus.on('client.gone', () => seen.push('late'));
    });
    offB = bus.on('client.gone', () => seen.push('b'));
    bus.emit('client.gone', ev);
    expect(seen).toEqual(['a', 'b']);
    seen.length = 0;
    bus.emit('client.gone', ev);
    expect(seen).toEqual(['a', 'late']);
  });
});
