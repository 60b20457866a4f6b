/**
 * Results: ratios between scenarios, the markdown table (stdout) and bench/results/latest.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ScenarioResult } from './scenarios.js';

export interface BenchReport {
  meta: Record<string, unknown> & { skipped: { scenario: string; reason: string }[] };
  /** Per scenario: the repetition with the median throughput, with the min–max of the key figures. */
  scenarios: Record<string, ScenarioResult>;
  /** Each ratio's median over the repetitions (each repetition's ratio uses the rows of that repetition). */
  ratios: Record<string, number>;
  /** Each ratio's median, min, max and every repetition's value. */
  ratio_stats: Record<string, Stats>;
  /** Per ratio: whether both sides had the same connections, window, load generator and frame size (±10 %). */
  ratio_checks: Record<string, { ok: boolean; problems: string[] }>;
  /** The issue-14 targets, from the medians. */
  targets: Record<
    string,
    { target: string; median: number | null; min: number | null; max: number | null; met: boolean }
  >;
  /** Every repetition, in order: its rows and its ratios. */
  repetitions: { rep: number; scenarios: Record<string, ScenarioResult>; ratios: Record<string, number> }[];
}

export interface Stats {
  median: number;
  min: number;
  max: number;
  n: number;
  values: number[];
}

/** Median (the mean of the middle two for an even count), min, max. */
export function stats(values: readonly number[]): Stats | null {
  if (values.length === 0) return null;
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median: round3(median), min: v[0]!, max: v[v.length - 1]!, n: v.length, values: [...values] };
}

/** How far two frame sizes may differ on the two sides of a ratio. */
const FRAME_TOLERANCE = 0.1;

/** Problems that make `a/b` an unfair comparison (empty: comparable). */
export function checkPair(a: ScenarioResult, b: ScenarioResult): string[] {
  const p: string[] = [];
  if (a.connections !== b.connections) p.push(`connections ${a.connections} vs ${b.connections}`);
  if (a.window !== b.window) p.push(`in-flight window ${fmt(a.window)} vs ${fmt(b.window)}`);
  if (a.load_generator !== b.load_generator) p.push('different load generators');
  // Two AIP runs of the same load that differ only by codec carry the same messages (msgpack leaves null members
  // out, by the protocol): their frame sizes differ by what the codec is measured for, so they are not compared.
  const codecPair =
    typeof a.codec === 'string' &&
    typeof b.codec === 'string' &&
    a.codec !== b.codec &&
    a.steps_per_task === b.steps_per_task;
  const fa = a.frame_bytes;
  const fb = b.frame_bytes;
  if (typeof fa !== 'number' || typeof fb !== 'number') p.push('frame size not measured');
  else if (!codecPair && Math.abs(fa - fb) > FRAME_TOLERANCE * Math.max(fa, fb))
    p.push(`mean frame ${fa} B vs ${fb} B (more than ${FRAME_TOLERANCE * 100} % apart)`);
  return p;
}

/** Numerator/denominator pairs; each yields `<a>/<b>:wall` and `<a>/<b>:cpu`. */
export const RATIO_PAIRS: readonly [string, string][] = [
  ['aip-json', 'uws-echo'],
  ['aip-msgpack', 'aip-json'],
  ['aip-msgpack', 'uws-echo'],
  ['aip-json', 'ws-echo'],
  ['aip-msgpack', 'ws-echo'],
  ['channel', 'uws-echo'],
  // The default session store (SQLite) against no disk at all: the cost of durability on the hot path.
  ['aip-json', 'aip-json-memstore'],
  // Rate-limited (latency) mode, same rate on both sides: CPU per round trip at half of the aip-json peak.
  ['aip-json-lat', 'uws-echo-lat'],
  // The floor model (only with --only floor,…): what a server doing only a durable step's unavoidable work costs,
  // against the echo (the CPU target's reach) and against aipd (what aipd adds to it).
  ['floor', 'uws-echo'],
  ['aip-json', 'floor'],
  // Metrics on (the default) against --metrics off: what the lifecycle-event metrics cost (within 3%, issue 15).
  ['aip-json', 'aip-json-metrics-off'],
];

/** Round trips (or requests) per second of server CPU, when the scenario measures one. */
function perCpu(r: ScenarioResult): number | null {
  return typeof r.per_server_cpu_s === 'number' ? r.per_server_cpu_s : null;
}

export function computeRatios(sc: Record<string, ScenarioResult>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [a, b] of RATIO_PAIRS) {
    const ra = sc[a];
    const rb = sc[b];
    if (!ra || !rb) continue;
    if (rb.throughput_per_s > 0) out[`${a}/${b}:wall`] = round3(ra.throughput_per_s / rb.throughput_per_s);
    const ca = perCpu(ra);
    const cb = perCpu(rb);
    if (ca !== null && cb !== null && cb > 0) out[`${a}/${b}:cpu`] = round3(ca / cb);
  }
  return out;
}

const round3 = (v: number): number => Math.round(v * 1000) / 1000;

const fmt = (v: unknown): string => {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString('en-US') : String(v);
  if (typeof v === 'string') return v;
  return typeof v === 'boolean' || typeof v === 'bigint' ? String(v) : JSON.stringify(v);
};

export function markdown(rep: BenchReport): string {
  const lines: string[] = [];
  lines.push(
    `# aipd bench, ${String(rep.meta.date)} (node ${String(rep.meta.node)}, ${String(rep.meta.cpus)} CPUs)`,
    '',
  );
  lines.push(
    '| scenario | conns | frame B | throughput/s | per server-CPU-s | p50 ms | p99 ms | server CPU s | server RSS MB | errors | notes |',
  );
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const [name, r] of Object.entries(rep.scenarios)) {
    const notes: string[] = [];
    if (typeof r.rss_per_conn_bytes === 'number')
      notes.push(`${r.rss_per_conn_bytes} B RSS/conn, ${fmt(r.heartbeats_answered)} heartbeats answered`);
    if (typeof r.server_user_us_per_unit === 'number' && typeof r.server_sys_us_per_unit === 'number')
      notes.push(`${r.server_user_us_per_unit} µs user + ${r.server_sys_us_per_unit} µs kernel per unit`);
    if (typeof r.tasks_completed === 'number')
      notes.push(`${r.tasks_completed} tasks done (${fmt(r.steps_per_task)} steps)`);
    if (typeof r.gc_share === 'number')
      notes.push(
        `GC ${(r.gc_share * 100).toFixed(1)} % (${fmt(r.scavenges_per_s)} scavenges/s, ${fmt(r.scavenge_mean_ms)} ms), loop delay p99 ${fmt(r.loop_delay_p99_ms)} ms`,
      );
    if (typeof r.turnaround_p99_ms === 'number')
      notes.push(`aipd step p99 ≤ ${fmt(r.turnaround_p99_ms)} ms (mean ${fmt(r.turnaround_mean_ms)} ms)`);
    if (typeof r.first_error === 'string') notes.push(`first error: ${r.first_error}`);
    const pc = perCpu(r);
    lines.push(
      `| ${name} | ${fmt(r.connections)} | ${fmt(r.frame_bytes ?? r.payload_bytes)} | ${fmt(r.throughput_per_s)} | ${fmt(pc === null ? null : Math.round(pc))} | ${fmt(r.p50_ms)} | ${fmt(r.p99_ms)} | ${fmt(r.server_cpu_s)} | ${fmt(r.server_rss_mb)} | ${fmt(r.errors ?? 0)} | ${notes.join('; ')} |`,
    );
  }
  if (Object.keys(rep.ratio_stats).length) {
    lines.push('', '| ratio | median | min–max | reps | comparable |', '|---|---:|---:|---:|---|');
    for (const [k, v] of Object.entries(rep.ratio_stats)) {
      const c = rep.ratio_checks[k.replace(/:(cpu|wall)$/, '')];
      const ok = c ? (c.ok ? 'yes' : `no: ${c.problems.join('; ')}`) : '–';
      lines.push(`| ${k} | ${v.median} | ${v.min}–${v.max} | ${v.n} | ${ok} |`);
    }
  }
  if (Object.keys(rep.targets).length) {
    lines.push('', '| target | wanted | median | min–max | met |', '|---|---:|---:|---:|---|');
    for (const [k, t] of Object.entries(rep.targets))
      lines.push(
        `| ${k} | ${t.target} | ${fmt(t.median)} | ${fmt(t.min)}–${fmt(t.max)} | ${t.met ? 'yes' : 'NO'} |`,
      );
  }
  for (const s of rep.meta.skipped) lines.push('', `- ${s.scenario}: ${s.reason}`);
  return lines.join('\n') + '\n';
}

export function writeJson(path: string, rep: BenchReport): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(rep, null, 2) + '\n');
}
