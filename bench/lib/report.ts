/**
 * Results: ratios between scenarios, the markdown table (stdout) and bench/results/latest.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ScenarioResult } from './scenarios.js';

export interface BenchReport {
  meta: Record<string, unknown> & { skipped: { scenario: string; reason: string }[] };
  scenarios: Record<string, ScenarioResult>;
  ratios: Record<string, number>;
}

/** Numerator/denominator pairs; each yields `<a>/<b>:wall` and `<a>/<b>:cpu`. */
export const RATIO_PAIRS: readonly [string, string][] = [
  ['aip-json', 'uws-echo'],
  ['aip-msgpack', 'uws-echo'],
  ['aip-json', 'ws-echo'],
  ['aip-msgpack', 'ws-echo'],
  ['channel', 'uws-echo'],
  // The default session store (SQLite) against no disk at all: the cost of durability on the hot path.
  ['aip-json', 'aip-json-memstore'],
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
    '| scenario | conns | payload B | throughput/s | per server-CPU-s | p50 ms | p99 ms | server CPU s | server RSS MB | errors | notes |',
  );
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const [name, r] of Object.entries(rep.scenarios)) {
    const notes: string[] = [];
    if (typeof r.rss_per_conn_bytes === 'number')
      notes.push(`${r.rss_per_conn_bytes} B RSS/conn, ${fmt(r.heartbeats_answered)} heartbeats answered`);
    if (typeof r.tasks_completed === 'number')
      notes.push(`${r.tasks_completed} tasks done (${fmt(r.steps_per_task)} steps)`);
    if (typeof r.first_error === 'string') notes.push(`first error: ${r.first_error}`);
    const pc = perCpu(r);
    lines.push(
      `| ${name} | ${fmt(r.connections)} | ${fmt(r.payload_bytes)} | ${fmt(r.throughput_per_s)} | ${fmt(pc === null ? null : Math.round(pc))} | ${fmt(r.p50_ms)} | ${fmt(r.p99_ms)} | ${fmt(r.server_cpu_s)} | ${fmt(r.server_rss_mb)} | ${fmt(r.errors ?? 0)} | ${notes.join('; ')} |`,
    );
  }
  if (Object.keys(rep.ratios).length) {
    lines.push('', '| ratio | value |', '|---|---:|');
    for (const [k, v] of Object.entries(rep.ratios)) lines.push(`| ${k} | ${v} |`);
  }
  for (const s of rep.meta.skipped) lines.push('', `- ${s.scenario}: ${s.reason}`);
  return lines.join('\n') + '\n';
}

export function writeJson(path: string, rep: BenchReport): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(rep, null, 2) + '\n');
}
