/**
 * `npm run bench`: runs every scenario with the server and the load generator in separate processes on
 * 127.0.0.1, prints progress on stderr, a markdown table on stdout, and writes bench/results/latest.json.
 * Settings: flags or BENCH_* environment variables (see bench/README.md). Bounded by default (about a minute).
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { channelRatios, channelScenarios } from './lib/channel.js';
import { killAll } from './lib/proc.js';
import { note } from './lib/progress.js';
import { computeRatios, markdown, writeJson, type BenchReport } from './lib/report.js';
import {
  aipdAvailable,
  aipScenario,
  echoScenario,
  httpScenarios,
  idleScenario,
  type BenchSettings,
  type ScenarioResult,
} from './lib/scenarios.js';

export const SCENARIOS = [
  'uws-echo',
  'ws-echo',
  'aip-json',
  'aip-json-memstore',
  'aip-json-metrics-off',
  'aip-msgpack',
  'idle-devices',
  'http',
  'channel',
] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values } = parseArgs({
  options: {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    conns: { type: 'string' },
    steps: { type: 'string' },
    idle: { type: 'string' },
    'idle-hold': { type: 'string' },
    'http-duration': { type: 'string' },
    only: { type: 'string' },
    skip: { type: 'string' },
    out: { type: 'string' },
    reps: { type: 'string' },
    'aipd-arg': { type: 'string', multiple: true },
    'channel-streams': { type: 'string' },
    help: { type: 'boolean' },
  },
});

function num(flag: string | undefined, env: string, def: number, min: number, max: number): number {
  const raw = flag ?? process.env[env];
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`bench: bad value ${JSON.stringify(raw)} for the flag or ${env} (expected ${min}..${max})`);
    process.exit(2);
  }
  return v;
}

function list(flag: string | undefined, env: string): Scenario[] | null {
  const raw = flag ?? process.env[env];
  if (!raw) return null;
  const names = raw
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  for (const n of names)
    if (!(SCENARIOS as readonly string[]).includes(n)) {
      console.error(
        `bench: unknown scenario ${JSON.stringify(n)} in the flag or ${env} (known: ${SCENARIOS.join(', ')})`,
      );
      process.exit(2);
    }
  return names as Scenario[];
}

if (values.help) {
  console.log(`usage: npm run bench -- [--duration S] [--warmup S] [--conns N] [--steps N] [--idle N] [--idle-hold S]
       [--http-duration S] [--channel-streams N] [--reps N] [--only a,b] [--skip a,b] [--out file] [--aipd-arg X ...]
scenarios: ${SCENARIOS.join(', ')}`);
  process.exit(0);
}

const settings: BenchSettings & { channelStreams: number } = {
  durationS: num(values.duration, 'BENCH_DURATION', 4, 1, 3600),
  warmupS: num(values.warmup, 'BENCH_WARMUP', 1, 0, 600),
  conns: num(values.conns, 'BENCH_CONNS', 64, 1, 9000),
  steps: num(values.steps, 'BENCH_STEPS', 1000, 1, 100_000),
  idleConns: num(values.idle, 'BENCH_IDLE_CONNS', 10_000, 1, 100_000),
  idleHoldS: num(values['idle-hold'], 'BENCH_IDLE_HOLD', 3, 1, 3600),
  httpDurationS: num(values['http-duration'], 'BENCH_HTTP_DURATION', 3, 1, 3600),
  channelStreams: num(values['channel-streams'], 'BENCH_CHANNEL_STREAMS', 4, 1, 64),
  aipdArgs: values['aipd-arg'] ?? (process.env.BENCH_AIPD_ARGS ?? '').split(' ').filter(Boolean),
};
const reps = num(values.reps, 'BENCH_REPS', 1, 1, 20);
const only = list(values.only, 'BENCH_ONLY');
const skip = new Set(list(values.skip, 'BENCH_SKIP') ?? []);
const selected = SCENARIOS.filter((s) => (only ? only.includes(s) : true) && !skip.has(s));
const outPath = values.out ?? fileURLToPath(new URL('../../bench/results/latest.json', import.meta.url));

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return null;
  }
}

process.on('SIGINT', () => {
  killAll();
  process.exit(130);
});

/** With several repetitions: the row with the median throughput, plus the min–max spread of the key figures. */
function medianRow(rows: ScenarioResult[]): ScenarioResult {
  if (rows.length === 1) return rows[0]!;
  const sorted = [...rows].sort((a, b) => a.throughput_per_s - b.throughput_per_s);
  const mid = sorted[Math.floor((sorted.length - 1) / 2)]!;
  const perCpu = rows.map((r) => r.per_server_cpu_s).filter((v): v is number => typeof v === 'number');
  return {
    ...mid,
    reps: rows.length,
    throughput_min: sorted[0]!.throughput_per_s,
    throughput_max: sorted[sorted.length - 1]!.throughput_per_s,
    ...(perCpu.length
      ? { per_server_cpu_s_min: Math.min(...perCpu), per_server_cpu_s_max: Math.max(...perCpu) }
      : {}),
  };
}

async function main(): Promise<number> {
  const report: BenchReport = {
    meta: {
      node: process.version,
      cpus: os.cpus().length,
      cpu_model: os.cpus()[0]?.model ?? null,
      kernel: os.release(),
      date: new Date().toISOString(),
      commit: gitCommit(),
      settings,
      reps,
      scenarios_run: selected,
      skipped: [],
      failed: [],
    },
    scenarios: {},
    ratios: {},
  };
  const failed = report.meta.failed as { scenario: string; error: string }[];
  const needsAipd = new Set<Scenario>([
    'aip-json',
    'aip-json-memstore',
    'aip-json-metrics-off',
    'aip-msgpack',
    'idle-devices',
    'http',
    'channel',
  ]);
  const t0 = Date.now();
  const runs: Record<string, ScenarioResult[]> = {};
  for (let rep = 1; rep <= reps; rep++) {
    for (const name of selected) {
      if (needsAipd.has(name) && !aipdAvailable()) {
        if (rep === 1)
          report.meta.skipped.push({
            scenario: name,
            reason: 'skipped: dist/src/cli/main.js not built (aipd server missing)',
          });
        continue;
      }
      try {
        const rows: Record<string, ScenarioResult> = {};
        if (name === 'uws-echo' || name === 'ws-echo') rows[name] = await echoScenario(name, settings);
        else if (name === 'aip-json') rows[name] = await aipScenario('json', settings);
        else if (name === 'aip-json-memstore') rows[name] = await aipScenario('json', settings, 'memory');
        else if (name === 'aip-json-metrics-off')
          rows[name] = await aipScenario('json', settings, 'default', 'off');
        else if (name === 'aip-msgpack') rows[name] = await aipScenario('msgpack', settings);
        else if (name === 'idle-devices') rows[name] = await idleScenario(settings);
        else if (name === 'channel') Object.assign(rows, await channelScenarios(settings));
        else Object.assign(rows, await httpScenarios(settings));
        for (const [k, r] of Object.entries(rows)) {
          (runs[k] ??= []).push(r);
          const tag = reps > 1 ? ` (rep ${rep}/${reps})` : '';
          note(
            `[${k}]${tag} ${r.throughput_per_s.toLocaleString('en-US')}/s, p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, server CPU ${r.server_cpu_s} s${r.errors ? `, ${Number(r.errors)} errors` : ''}`,
          );
        }
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        failed.push({ scenario: name, error: reps > 1 ? `rep ${rep}: ${msg}` : msg });
        note(`[${name}] FAILED: ${msg}`);
      }
    }
  }
  for (const [k, rows] of Object.entries(runs)) report.scenarios[k] = medianRow(rows);
  report.meta.total_s = Math.round((Date.now() - t0) / 100) / 10;
  // channel/uws-echo compares with the echo of the same 64 KiB chunks (row uws-echo-64k), not the small-frame echo.
  report.ratios = { ...computeRatios(report.scenarios), ...channelRatios(report.scenarios) };
  writeJson(outPath, report);
  process.stdout.write(markdown(report));
  note(`results written to ${outPath}`);
  return failed.length ? 1 : 0;
}

main().then(
  (code) => {
    killAll();
    process.exit(code);
  },
  (err: unknown) => {
    console.error(err);
    killAll();
    process.exit(1);
  },
);
