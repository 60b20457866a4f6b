import { describe, expect, it } from 'vitest';
import { jsonLengthAtMost, jsonSizeEstimate } from '../../src/lib/json-bound.js';
import { prng } from '../protocol/fuzz-gen.js';

/** A random JSON-like value: escapes, surrogates, control characters, extreme numbers, nesting. */
function randomValue(rand: () => number, depth = 0): unknown {
  const pick = Math.floor(rand() * (depth > 4 ? 5 : 7));
  switch (pick) {
    case 0:
      return null;
    case 1:
      return rand() < 0.5;
    case 2:
      return [0, -0, 1e-308, -1.2345678901234567e-308, Number.MAX_VALUE, 123.456, -7][Math.floor(rand() * 7)];
    case 3:
    case 4: {
      const chars = ['a', '"', '\\', '\n', '\u0001', '\ud800', 'é', '😀', '\u2028'];
      let s = '';
      const n = Math.floor(rand() * 20);
      for (let i = 0; i < n; i++) s += chars[Math.floor(rand() * chars.length)];
      return s;
    }
    case 5:
      return Array.from({ length: Math.floor(rand() * 5) }, () => randomValue(rand, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      const n = Math.floor(rand() * 5);
      for (let i = 0; i < n; i++) o[String(randomValue(rand, 9))] = randomValue(rand, depth + 1);
      return o;
    }
  }
}

describe('jsonLengthAtMost', () => {
  it('never says "at most" for a value whose JSON is longer (10,000 random values, limits around their size)', () => {
    const rand = prng(14);
    let certain = 0;
    for (let i = 0; i < 10_000; i++) {
      const v = randomValue(rand);
      const len = JSON.stringify(v).length;
      for (const limit of [0, len - 1, len, len * 3, len * 7]) {
        if (jsonLengthAtMost(v, limit)) {
          certain++;
          expect(len, JSON.stringify(v)).toBeLessThanOrEqual(limit);
        }
      }
    }
    // and it is useful: with room to spare it is certain
    expect(certain).toBeGreaterThan(10_000);
  });

  it('is certain for a typical event payload far under the limit, and not for one over it', () => {
    const data = { response_id: 'r'.repeat(36), call_ids: ['c'.repeat(36)], tools: ['click_input'] };
    expect(jsonLengthAtMost(data, 64 * 1024)).toBe(true);
    expect(jsonLengthAtMost({ big: 'x'.repeat(70_000) }, 64 * 1024)).toBe(false);
  });

  it('is never certain for values whose JSON is not their plain shape', () => {
    expect(jsonLengthAtMost({ at: new Date(0) }, 1e6)).toBe(false);
    expect(jsonLengthAtMost({ custom: { toJSON: () => 'x'.repeat(100) } }, 1e6)).toBe(false);
    expect(jsonLengthAtMost({ bytes: new Uint8Array(4) }, 1e6)).toBe(false);
    expect(jsonLengthAtMost({ n: 1n }, 1e6)).toBe(false);
    class Thing {
      readonly a = 1;
    }
    expect(jsonLengthAtMost({ t: new Thing() }, 1e6)).toBe(false);
    expect(jsonLengthAtMost(Object.assign(Object.create(null) as object, { a: 'b' }), 100)).toBe(true);
  });
});

describe('jsonSizeEstimate', () => {
  it('is within a few bytes per value of the JSON length for text without escapes (10,000 random values)', () => {
    const rand = prng(15);
    const plain = (v: unknown): unknown =>
      typeof v === 'string'
        ? v.replace(/[^a-zé😀]/gu, 'a')
        : Array.isArray(v)
          ? v.map(plain)
          : v !== null && typeof v === 'object'
            ? Object.fromEntries(Object.entries(v).map(([k, x]) => [plain(k), plain(x)]))
            : v;
    for (let i = 0; i < 10_000; i++) {
      const v = plain(randomValue(rand));
      const text = JSON.stringify(v);
      const nodes = (text.match(/[,[{:]/g)?.length ?? 0) + 1;
      // a number counts 8 whatever its digits (up to 24), a literal 5, a container one comma too many
      expect(Math.abs(jsonSizeEstimate(v) - text.length), text).toBeLessThanOrEqual(24 * nodes);
    }
  });

  it('grows with what a value carries, byte for byte', () => {
    const small = jsonSizeEstimate([{ status: 'success', result: 'x' }]);
    expect(jsonSizeEstimate([{ status: 'success', result: 'x'.repeat(1_000_001) }]) - small).toBe(1_000_000);
    // strings and keys count what they write, plus one comma too many per container
    expect(jsonSizeEstimate({ a: 'xyz', b: ['pq'] })).toBe(
      JSON.stringify({ a: 'xyz', b: ['pq'] }).length + 2,
    );
  });

  it('measures values whose JSON is not their plain shape by writing them', () => {
    const v = { at: new Date(0) };
    expect(jsonSizeEstimate(v)).toBe(JSON.stringify(v).length);
    expect(jsonSizeEstimate(undefined)).toBe(5);
  });
});
