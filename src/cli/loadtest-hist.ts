/**
 * A small log-linear latency histogram in microseconds (about 1.5 % resolution, 1 µs .. 35 min).
 * Fixed memory, O(1) record, and mergeable across processes via `toJSON` / `fromJSON`.
 */
const SUB = 128; // exact buckets below 128 µs; then 64 sub-buckets per power of two
const BUCKETS = SUB + 25 * 64;

function indexOf(us: number): number {
  const v = Math.max(0, Math.min(2 ** 31 - 1, Math.round(us)));
  if (v < SUB) return v;
  const shift = 31 - Math.clz32(v) - 6;
  return SUB + (shift - 1) * 64 + ((v >> shift) - 64);
}

function valueOf(i: number): number {
  if (i < SUB) return i;
  const k = i - SUB;
  const shift = Math.floor(k / 64) + 1;
  const m = (k % 64) + 64;
  return ((m << shift) + ((m + 1) << shift) - 1) / 2; // bucket midpoint
}

export interface HistogramJson {
  counts: Record<string, number>;
  max: number;
  sum: number;
}

export class LatencyHistogram {
  private counts = new Float64Array(BUCKETS);
  count = 0;
  maxUs = 0;
  sumUs = 0;

  record(us: number): void {
    this.counts[indexOf(us)]! += 1;
    this.count++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.maxUs = 0;
    this.sumUs = 0;
  }

  merge(other: LatencyHistogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.sumUs += other.sumUs;
    this.maxUs = Math.max(this.maxUs, other.maxUs);
  }

  /** Value in µs at quantile q (0..1); 0 when empty. */
  percentile(q: number): number {
    if (this.count === 0) return 0;
    const target = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= target) return Math.min(valueOf(i), this.maxUs);
    }
    return this.maxUs;
  }

  /** Milliseconds at quantile q, rounded to µs. */
  ms(q: number): number {
    return Math.round(this.percentile(q)) / 1000;
  }

  toJSON(): HistogramJson {
    const counts: Record<string, number> = {};
    this.counts.forEach((c, i) => {
      if (c > 0) counts[i] = c;
    });
    return { counts, max: this.maxUs, sum: this.sumUs };
  }

  static fromJSON(j: HistogramJson): LatencyHistogram {
    const h = new LatencyHistogram();
    for (const [i, c] of Object.entries(j.counts)) {
      h.counts[Number(i)] = c;
      h.count += c;
    }
    h.maxUs = j.max;
    h.sumUs = j.sum;
    return h;
  }
}
