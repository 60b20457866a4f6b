import { describe, expect, it } from 'vitest';
import { SlotMap } from '../../src/lib/slot-map.js';

/** Drives a SlotMap and a Map with the same operations and checks they agree after every step. */
function agree(ops: [op: 'set' | 'delete' | 'clear', key: number, value?: number][]): void {
  const slot = new SlotMap<number, number>();
  const ref = new Map<number, number>();
  for (const [op, key, value] of ops) {
    if (op === 'set') {
      expect(slot.set(key, value!)).toBe(slot);
      ref.set(key, value!);
    } else if (op === 'delete') {
      expect(slot.delete(key)).toBe(ref.delete(key));
    } else {
      slot.clear();
      ref.clear();
    }
    expect(slot.size).toBe(ref.size);
    expect(slot.entries()).toEqual([...ref]);
    expect(slot.values()).toEqual([...ref.values()]);
    for (let k = 0; k < 6; k++) {
      expect(slot.get(k)).toBe(ref.get(k));
      expect(slot.has(k)).toBe(ref.has(k));
    }
  }
}

describe('SlotMap', () => {
  it('behaves as a Map through one entry coming and going', () => {
    agree([
      ['set', 1, 10],
      ['set', 1, 11],
      ['delete', 2],
      ['delete', 1],
      ['delete', 1],
      ['set', 2, 20],
    ]);
  });

  it('keeps insertion order when it grows past one entry and shrinks back', () => {
    agree([
      ['set', 3, 30],
      ['set', 1, 10],
      ['set', 2, 20],
      ['set', 3, 31],
      ['delete', 3],
      ['delete', 1],
      ['set', 0, 0],
      ['delete', 2],
      ['delete', 0],
      ['set', 5, 50],
      ['set', 4, 40],
      ['clear', 0],
      ['set', 4, 41],
    ]);
  });

  it('agrees with a Map over a long pseudo-random run', () => {
    let seed = 7;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    const ops: [op: 'set' | 'delete' | 'clear', key: number, value?: number][] = [];
    for (let i = 0; i < 2000; i++) {
      const r = next() % 100;
      ops.push(r < 50 ? ['set', next() % 6, i] : r < 98 ? ['delete', next() % 6] : ['clear', 0]);
    }
    agree(ops);
  });

  it('iterates over a snapshot, so entries may be deleted while walking', () => {
    const m = new SlotMap<string, number>();
    m.set('a', 1).set('b', 2).set('c', 3);
    const seen: string[] = [];
    for (const [k] of m.entries()) {
      seen.push(k);
      m.delete(k);
    }
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(m.size).toBe(0);
  });
});
