/**
 * What the server itself says about a measured window, read from its `/metrics` (prom-client's process metrics):
 * how much of the window went to garbage-collection pauses, and how late its event loop ran. The probe is read
 * once when the window opens and once when it closes; GC figures are the difference of the two readings, and the
 * event-loop delay percentiles cover the window only, because prom-client resets its delay histogram at every read.
 *
 * This is the server-side half of a latency row: the client-side p99 says how late the answers were, these say
 * how much of that the server's own pauses explain.
 */
import {
  bucketsOf,
  parseExposition,
  quantileBetween,
  valueOf,
  type Buckets,
} from '../../src/lib/prom-text.js';

/** aipd's own step time: a session's results in → its next command out (src/ops/metrics.ts). */
const TURNAROUND = 'aipd_step_turnaround_seconds';

export interface ProbeReading {
  /** GC pause seconds and counts since the process started, by prom-client's `kind`. */
  readonly gc: Readonly<Record<string, { sum: number; count: number }>>;
  /** Event-loop delay percentiles (ms) since the previous reading; null when no delay was sampled. */
  readonly lag: { p50: number; p99: number; max: number } | null;
  /** aipd's step-turnaround histogram (cumulative buckets, +Inf last: the count) and its sum (s). */
  readonly turnaround: Buckets & { sum: number };
}

export interface ProbeWindow {
  /** Share of the window's wall time spent in GC pauses (all kinds). */
  gc_share: number;
  /** Scavenges (`minor`) a second, and their mean pause in ms. */
  scavenges_per_s: number;
  scavenge_mean_ms: number | null;
  /** Mark-sweep-compacts (`major`) in the window. */
  major_gcs: number;
  /** How late the event loop ran over the window, ms (sampled every 10 ms, past the sampling interval). */
  loop_delay_p50_ms: number | null;
  loop_delay_p99_ms: number | null;
  loop_delay_max_ms: number | null;
  /**
   * aipd's step turnaround in the window, ms (results in → the session's next command out, inside the server):
   * its mean, and its p50 and p99 as the upper bound of their histogram bucket. Null when no step turned around.
   */
  turnaround_mean_ms: number | null;
  turnaround_p50_ms: number | null;
  turnaround_p99_ms: number | null;
}

/** prom-client's default `eventLoopMonitoringPrecision` (aipd does not change it), ms. */
export const PROM_LOOP_RESOLUTION_MS = 10;

/** Reads what this probe needs from a Prometheus text exposition (the dashboard's strict parser). */
export function parseProbe(text: string): ProbeReading {
  const e = parseExposition(text);
  const gc: Record<string, { sum: number; count: number }> = {};
  for (const sample of e.samples) {
    const kind = sample.labels.kind;
    if (kind === undefined) continue;
    if (sample.name === 'nodejs_gc_duration_seconds_sum')
      (gc[kind] ??= { sum: 0, count: 0 }).sum = sample.value;
    else if (sample.name === 'nodejs_gc_duration_seconds_count')
      (gc[kind] ??= { sum: 0, count: 0 }).count = sample.value;
  }
  // With no delay sampled since the last read, prom-client reports NaN and a huge minimum: no figure.
  const [p50, p99, max] = ['p50', 'p99', 'max'].map((q) => valueOf(e, `nodejs_eventloop_lag_${q}_seconds`));
  const ok = (v: number | undefined): v is number =>
    v !== undefined && Number.isFinite(v) && v > 0 && v < 1e6;
  const turnaround = {
    ...bucketsOf(e, TURNAROUND),
    sum: valueOf(e, `${TURNAROUND}_sum`),
  };
  if (!ok(p50) || !ok(p99) || !ok(max)) return { gc, lag: null, turnaround };
  // Node's delay histogram records each whole sampling interval; the delay is what exceeds the resolution.
  const delay = (v: number): number => Math.max(0, v * 1e3 - PROM_LOOP_RESOLUTION_MS);
  return { gc, lag: { p50: delay(p50), p99: delay(p99), max: delay(max) }, turnaround };
}

/** Reads the server's `/metrics`; null when it cannot (metrics off, or the server is busy past `timeoutMs`). */
export async function readProbe(
  port: number,
  apiKey: string,
  timeoutMs = 2000,
): Promise<ProbeReading | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
      headers: { 'X-API-Key': apiKey },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) return null;
    return parseProbe(await res.text());
  } catch {
    return null;
  }
}

const r3 = (v: number): number => Math.round(v * 1000) / 1000;

/** The window between two readings `wallS` seconds apart. */
export function probeWindow(before: ProbeReading, after: ProbeReading, wallS: number): ProbeWindow {
  const delta = (kind: string): { sum: number; count: number } => ({
    sum: (after.gc[kind]?.sum ?? 0) - (before.gc[kind]?.sum ?? 0),
    count: (after.gc[kind]?.count ?? 0) - (before.gc[kind]?.count ?? 0),
  });
  const kinds = new Set([...Object.keys(before.gc), ...Object.keys(after.gc)]);
  let pauseS = 0;
  for (const k of kinds) pauseS += delta(k).sum;
  const minor = delta('minor');
  const count = (b: Buckets): number => b.counts[b.counts.length - 1] ?? 0;
  const turns = count(after.turnaround) - count(before.turnaround);
  const ms = (s: number | null): number | null => (s === null ? null : r3(s * 1e3));
  return {
    gc_share: r3(pauseS / wallS),
    scavenges_per_s: r3(minor.count / wallS),
    scavenge_mean_ms: minor.count > 0 ? r3((minor.sum / minor.count) * 1e3) : null,
    major_gcs: delta('major').count,
    loop_delay_p50_ms: after.lag ? r3(after.lag.p50) : null,
    loop_delay_p99_ms: after.lag ? r3(after.lag.p99) : null,
    loop_delay_max_ms: after.lag ? r3(after.lag.max) : null,
    turnaround_mean_ms: turns > 0 ? ms((after.turnaround.sum - before.turnaround.sum) / turns) : null,
    turnaround_p50_ms: ms(quantileBetween(before.turnaround, after.turnaround, 0.5)),
    turnaround_p99_ms: ms(quantileBetween(before.turnaround, after.turnaround, 0.99)),
  };
}
