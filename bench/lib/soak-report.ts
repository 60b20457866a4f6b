/** Number crunching and text output for `npm run soak`: least-squares slopes, the memory table, aligned tables. */

export const MB = 1024 * 1024;

/** One memory sample of the soak server (a JSON line of bench/soak-server.ts, timed by the soak process). */
export interface MemSample {
  /** Seconds since the start of the soak phase (negative before it). */
  t_s: number;
  phase: 'idle' | 'calibration' | 'soak' | 'drain';
  n: number;
  gc: boolean;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  clients: number;
  channels: number;
}

export interface Slope {
  /** MB per hour. */
  per_hour: number;
  /** Standard error of the slope, MB per hour (null with fewer than 3 points). */
  stderr: number | null;
  points: number;
  from_s: number;
  to_s: number;
}

/** Least-squares slope of `key` (bytes) over time, in MB/hour; null with fewer than 2 points. */
export function slope(samples: readonly MemSample[], key: 'rss' | 'heapUsed'): Slope | null {
  const n = samples.length;
  if (n < 2) return null;
  const xs = samples.map((s) => s.t_s / 3600);
  const ys = samples.map((s) => s[key] / MB);
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (xs[i]! - mx) ** 2;
    sxy += (xs[i]! - mx) * (ys[i]! - my);
  }
  if (sxx === 0) return null;
  const b = sxy / sxx;
  let stderr: number | null = null;
  if (n >= 3) {
    let sse = 0;
    for (let i = 0; i < n; i++) sse += (ys[i]! - (my + b * (xs[i]! - mx))) ** 2;
    stderr = Math.sqrt(sse / (n - 2) / sxx);
  }
  return { per_hour: b, stderr, points: n, from_s: samples[0]!.t_s, to_s: samples[n - 1]!.t_s };
}

export function fmtSlope(s: Slope | null): string {
  if (!s) return 'n/a (fewer than 2 samples after the warm-up)';
  const se = s.stderr === null ? '' : ` ± ${s.stderr.toFixed(1)}`;
  return `${s.per_hour >= 0 ? '+' : ''}${s.per_hour.toFixed(1)}${se} MB/hour (${s.points} samples, t = ${Math.round(s.from_s)}–${Math.round(s.to_s)} s)`;
}

export const mb = (bytes: number, d = 1): string => (bytes / MB).toFixed(d);
export const int = (v: number): string => Math.round(v).toLocaleString('en-US');
export const pct = (v: number): string => `${Math.round(v * 100)} %`;
/** Writes one line to stdout. */
export const out = (line = ''): void => {
  process.stdout.write(line + '\n');
};

/** Right-aligned text table (first column left-aligned). */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string =>
    r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

/**
 * The memory table: the idle server, the start of the soak, 1, 10 and 30 minutes (the first sample at or after
 * each mark, when the run got there), the end of the load and the last sample after the drain.
 */
export function memoryRows(
  samples: readonly MemSample[],
  durationS: number,
): { label: string; s: MemSample }[] {
  const rows: { label: string; s: MemSample }[] = [];
  const idle = samples.find((s) => s.phase === 'idle');
  if (idle) rows.push({ label: 'idle, before any load', s: idle });
  const soak = samples.filter((s) => s.phase === 'soak');
  if (soak.length) rows.push({ label: 'soak start', s: soak[0]! });
  for (const m of [1, 10, 30]) {
    if (m * 60 >= durationS) break;
    const s = soak.find((x) => x.t_s >= m * 60);
    if (s) rows.push({ label: `${m} min`, s });
  }
  if (soak.length > 1) rows.push({ label: 'end of load', s: soak[soak.length - 1]! });
  const last = samples[samples.length - 1];
  if (last && last.phase === 'drain') rows.push({ label: 'after drain (tasks ended)', s: last });
  return rows;
}
