/**
 * Histogram quantiles from two readings of a Prometheus exposition (src/lib/prom-text.ts): the dashboard's
 * round-trip sparkline and the bench's server probe read them this way.
 */
import { describe, expect, it } from 'vitest';
import { bucketsOf, parseExposition, quantileBetween } from '../../src/lib/prom-text.js';

const exposition = (counts: [number, number, number], other = 0): string =>
  [
    '# TYPE h_seconds histogram',
    // written out of order, as a labelled histogram's series may be: bucketsOf sorts by bound
    `h_seconds_bucket{op="a",le="+Inf"} ${counts[2]}`,
    `h_seconds_bucket{op="a",le="0.01"} ${counts[0]}`,
    `h_seconds_bucket{op="a",le="0.1"} ${counts[1]}`,
    `h_seconds_bucket{op="b",le="0.01"} ${other}`,
    `h_seconds_bucket{op="b",le="+Inf"} ${other}`,
  ].join('\n');

describe('histogram quantiles between two readings', () => {
  it('reads one series of a labelled histogram, sorted by bound', () => {
    expect(bucketsOf(parseExposition(exposition([1, 2, 3], 7)), 'h_seconds', { op: 'a' })).toEqual({
      le: [0.01, 0.1, Infinity],
      counts: [1, 2, 3],
    });
  });

  it("gives the upper bound of the bucket the quantile of the window's observations falls in", () => {
    const a = bucketsOf(parseExposition(exposition([90, 95, 100])), 'h_seconds', { op: 'a' });
    // 100 more: 10 within 10 ms, 89 more within 100 ms, 1 past it
    const b = bucketsOf(parseExposition(exposition([100, 194, 200])), 'h_seconds', { op: 'a' });
    expect(quantileBetween(a, b, 0.1)).toBe(0.01);
    expect(quantileBetween(a, b, 0.5)).toBe(0.1);
    expect(quantileBetween(a, b, 0.99)).toBe(0.1);
    // past the last finite bound there is no figure, and neither is there with no observation
    expect(quantileBetween(a, b, 1)).toBeNull();
    expect(quantileBetween(b, b, 0.5)).toBeNull();
    // from the start: the first reading's own observations
    expect(quantileBetween(null, a, 0.9)).toBe(0.01);
    expect(quantileBetween(null, a, 0.95)).toBe(0.1);
  });
});
