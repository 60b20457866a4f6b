/** encodeHttpBody on bodies JSON cannot hold: a 500 answer and the error reported, never a throw out of a write. */
import { describe, expect, it } from 'vitest';
import { encodeHttpBody } from '../../src/transport/http.js';

describe('encodeHttpBody', () => {
  it('encodes JSON bodies and passes declared text and bytes through', () => {
    expect(encodeHttpBody({ status: 201, body: { a: 1 } })).toEqual({
      status: 201,
      contentType: 'application/json',
      body: '{"a":1}',
    });
    const bytes = new Uint8Array([1, 2]);
    expect(
      encodeHttpBody({ status: 200, body: bytes, headers: { 'content-type': 'application/octet-stream' } }),
    ).toEqual({ status: 200, contentType: 'application/octet-stream', body: bytes });
  });

  it('answers 500 and reports the error for a body JSON cannot hold (a cycle, a BigInt)', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const body of [cyclic, { n: 10n }]) {
      const errors: unknown[] = [];
      const out = encodeHttpBody({ status: 200, body }, (e) => errors.push(e));
      expect(out).toEqual({
        status: 500,
        contentType: 'application/json',
        body: '{"detail":"Internal Server Error"}',
      });
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(TypeError);
    }
  });
});
