import { describe, expect, it } from 'vitest';
import { uuid } from '../../src/lib/uuid.js';

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('uuid', () => {
  it('gives version 4, variant 10 UUIDs in lower case, across several refills', () => {
    // 1,000 ids span 8 blocks of 128: every refill writes every id of its block.
    const ids = Array.from({ length: 1000 }, () => uuid());
    for (const id of ids) expect(id).toMatch(V4);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('gives ids that are independent of one another', () => {
    // Every hex digit but the fixed version digit takes all 16 values over 1,000 ids (a formatting slip, such as
    // one nibble written twice or a block not refilled, would pin some position to fewer values).
    const ids = Array.from({ length: 1000 }, () => uuid().replaceAll('-', ''));
    for (let pos = 0; pos < 32; pos++) {
      const seen = new Set(ids.map((id) => id[pos]));
      if (pos === 12) expect([...seen]).toEqual(['4']);
      else if (pos === 16) expect([...seen].sort()).toEqual(['8', '9', 'a', 'b']);
      else expect(seen.size).toBe(16);
    }
  });
});
