/** The state conformance suite over the in-memory implementations, plus what is particular to them. */
import { describe, expect, it } from 'vitest';
import { EventBus } from '../../src/state/events.js';
import { MemoryClientDirectory } from '../../src/state/memory-client-directory.js';
import { MemorySessionStore } from '../../src/state/memory-session-store.js';
import { MemoryTaskResultStore, approxBytes } from '../../src/state/memory-task-results.js';
import { clientDirectorySuite, sessionStoreSuite, taskResultStoreSuite } from './conformance.js';

const resultOptions = { maxEntries: 100, maxBytes: 1024 * 1024, maxAliases: 100 };

sessionStoreSuite('memory', { make: () => new MemorySessionStore() });
taskResultStoreSuite('memory', { make: () => new MemoryTaskResultStore(resultOptions) });
clientDirectorySuite('memory', { make: () => new MemoryClientDirectory() });

describe('MemoryTaskResultStore byte budget', () => {
  it('holds its byte budget however large the results, evicting the oldest', async () => {
    const store = new MemoryTaskResultStore({
      maxEntries: 10_000,
      maxBytes: 50 * 1024 * 1024,
      maxAliases: 10,
    });
    const shot = 'A'.repeat(10 * 1024 * 1024); // a 10 MB screenshot-like string (20 MiB as UTF-16)
    for (let i = 0; i < 20; i++)
      await store.set(`t${i}`, {
        status: 'done',
        session_id: `s${i}`,
        result: { shot },
        task_status: 'completed',
        error: null,
      });
    expect(store.calculatedSize).toBeLessThanOrEqual(50 * 1024 * 1024);
    expect(store.size).toBe(2);
    expect(await store.get('t0')).toBeUndefined();
    expect(await store.get('t19')).toMatchObject({ session_id: 's19' });
  });

  it('does not keep an entry larger than the whole budget, nor an older value under its name', async () => {
    const store = new MemoryTaskResultStore({ maxEntries: 10, maxBytes: 1024, maxAliases: 10 });
    await store.set('t', { status: 'pending', session_id: 's' });
    await store.set('t', {
      status: 'done',
      session_id: 's',
      result: 'x'.repeat(4096),
      task_status: 'completed',
      error: null,
    });
    expect(await store.get('t')).toBeUndefined();
  });

  it('estimates strings at two bytes a unit and counts nested nodes', () => {
    expect(approxBytes('abcd')).toBe(16 + 8);
    expect(approxBytes({ a: [1, 'xy'] })).toBe(16 + (16 + 2) + 16 + 8 + (16 + 4));
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
    const bus = new EventBus();
    expect(bus.wants('command.sent')).toBe(false);
  });
});
