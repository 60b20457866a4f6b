/**
 * JsonArena: JSON texts appended as UTF-8 to one growing buffer, read back parsed, in order.
 */
import { describe, expect, it } from 'vitest';
import { JsonArena } from '../../src/lib/json-arena.js';

describe('JsonArena', () => {
  it('is empty until something is appended', () => {
    const a = new JsonArena();
    expect(a.values()).toEqual([]);
    expect([a.size, a.bytes]).toEqual([0, 0]);
  });

  it('gives back every value in order, through many doublings of its buffer', () => {
    const a = new JsonArena();
    const values = Array.from({ length: 5000 }, (_, i) => ({
      step: i,
      results: [{ status: 'success', result: 'x'.repeat(i % 300), error: null, call_id: `c${i}` }],
    }));
    // Half of them in three pieces, as the plan agent writes a step around its results' JSON.
    for (const v of values)
      if (v.step % 2 === 0) a.append(JSON.stringify(v));
      else a.append(JSON.stringify(v.results), `{"step":${v.step},"results":`, '}');
    expect(a.size).toBe(values.length);
    expect(a.values()).toEqual(values);
    // The texts' own bytes and one comma between each two.
    const texts = values.map((v) => Buffer.byteLength(JSON.stringify(v)));
    expect(a.bytes).toBe(texts.reduce((x, y) => x + y, 0) + values.length - 1);
  });

  it('keeps text that is more than one byte a character in UTF-8, escapes and lone surrogates included', () => {
    const a = new JsonArena();
    const values: unknown[] = [
      'é',
      '中文字符'.repeat(400), // 3 bytes a unit: the worst case of the capacity bound
      '😀 emoji',
      'lone \ud800 surrogate', // JSON.stringify writes it as \ud800
      'quote " backslash \\ newline \n',
      [1.5, -0, null, true, { k: 'v' }],
    ];
    for (const v of values) a.append(JSON.stringify(v));
    expect(a.values()).toEqual(values.map((v) => JSON.parse(JSON.stringify(v)) as unknown));
  });
});
