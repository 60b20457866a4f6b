/**
 * `npm run bench`: runs every scenario with the server and the load generator in separate processes on
 * 127.0.0.1, prints progress on stderr, a markdown table on stdout, and writes bench/results/latest.json.
 * Settings: flags or BENCH_* environment variables (see bench/README.md). Bounded by default (about a minute).
 */
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { channelRatios, channelScenarios } from './lib/channel.js';
import { gitCommit, killAll } from './lib/proc.js';
import { note } from './lib/progress.js';
import { AIPD_V8_FLAGS } from '../src/cli/v8-flags.js';
import {
  checkPair,
  computeRatios,
  markdown,
  RATIO_PAIRS,
  stats,
  writeJson,
  type BenchReport,
  type Stats,
} from './lib/report.js';
import {
  aipdAvailable,
  aipScenario,
  echoScenario,
  httpScenarios,
  idleScenario,
  type BenchSettings,
  type ScenarioResult,
} from './lib/scenarios.js';

// Run in this order in every repetition: aip-json first, because the echoes are sized to its frames and the
// latency scenarios run at half of its peak, both from the same repetition.
export const SCENARIOS = [
  'aip-json',
  'uws-echo',
  'ws-echo',
  'aip-msgpack',
  'aip-json-memstore',
  'aip-json-metrics-off',
  'aip-json-lat',
  'uws-echo-lat',
  'idle-devices',
  'http',
  'channel',
] as const;
/**
 * Run only when named in `--only`: the floor model (bench/servers/uws-floor.ts) at its peak, then at
 * `--lat-fraction` of that peak (its own, as aip-json-lat runs at aip-json's). After the default scenarios.
 */
const EXTRA_SCENARIOS = ['floor', 'floor-lat'] as const;
const ALL_SCENARIOS = [...SCENARIOS, ...EXTRA_SCENARIOS] as const;
type Scenario = (typeof ALL_SCENARIOS)[number];

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
    repeat: { type: 'string' },
    'lat-rate': { type: 'string' },
    'lat-fraction': { type: 'string' },
    'aipd-arg': { type: 'string', multiple: true },
    profile: { type: 'string' },
    'aipd-node-arg': { type: 'string', multiple: true },
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
    if (!(ALL_SCENARIOS as readonly string[]).includes(n)) {
      console.error(
        `bench: unknown scenario ${JSON.stringify(n)} in the flag or ${env} (known: ${ALL_SCENARIOS.join(', ')})`,
      );
      process.exit(2);
    }
  return names as Scenario[];
}

if (values.help) {
  console.log(`usage: npm run bench -- [--duration S] [--warmup S] [--conns N] [--steps N] [--idle N] [--idle-hold S]
       [--http-duration S] [--channel-streams N] [--repeat N] [--lat-fraction F] [--lat-rate N]
       [--only a,b] [--skip a,b] [--out file] [--aipd-arg X ...]
       [--profile DIR]  (write a V8 CPU profile of every aipd process into DIR) [--aipd-node-arg X ...]
scenarios: ${SCENARIOS.join(', ')}
only with --only: ${EXTRA_SCENARIOS.join(', ')} (the floor model, bench/servers/uws-floor.ts)`);
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
  aipdNodeArgs: [
    ...AIPD_V8_FLAGS,
    ...(values['aipd-node-arg'] ?? []),
    ...(values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : []),
  ],
};
const reps = num(values.repeat ?? values.reps, 'BENCH_REPEAT', 3, 1, 20);
/** The latency scenarios run at this fraction of the same repetition's aip-json peak, or at a fixed rate. */
const latFraction = num(values['lat-fraction'], 'BENCH_LAT_FRACTION', 0.5, 0.01, 1);
const latRate = num(values['lat-rate'], 'BENCH_LAT_RATE', 0, 0, 1_000_000);
const only = list(values.only, 'BENCH_ONLY');
const skip = new Set(list(values.skip, 'BENCH_SKIP') ?? []);
const selected = ALL_SCENARIOS.filter(
  (s) => (only ? only.includes(s) : (SCENARIOS as readonly string[]).includes(s)) && !skip.has(s),
);
const outPath = values.out ?? fileURLToPath(new URL('../../bench/results/latest.json', import.meta.url));

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
    p99_ms_reps: rows.map((r) => r.p99_ms),
    per_server_cpu_s_reps: rows.map((r) => r.per_server_cpu_s ?? null),
    ...(typeof mid.rss_per_conn_bytes === 'number'
      ? { rss_per_conn_bytes_reps: rows.map((r) => r.rss_per_conn_bytes ?? null) }
      : {}),
    throughput_min: sorted[0]!.throughput_per_s,
    throughput_max: sorted[sorted.length - 1]!.throughput_per_s,
    ...(perCpu.length
      ? { per_server_cpu_s_min: Math.min(...perCpu), per_server_cpu_s_max: Math.max(...perCpu) }
      : {}),
  };
}

/** Runs one scenario of repetition `rep`; `done` holds this repetition's rows so far (aip-json sizes the echoes). */
async function runOne(
  name: Scenario,
  done: Record<string, ScenarioResult>,
): Promise<Record<string, ScenarioResult>> {
  const aip = done['aip-json'];
  // The echoes carry frames of the same mean size as aip-json's round trip (request and reply): payload = the mean
  // wire size less the header of a masked (8 B) and an unmasked (4 B) frame of 126..65535 bytes.
  const echoPayload = typeof aip?.frame_bytes === 'number' ? aip.frame_bytes - 6 : undefined;
  const echo = echoPayload === undefined ? {} : { payloadBytes: echoPayload };
  /** A latency scenario's rate: `--lat-rate`, or `--lat-fraction` of the peak row of the same repetition. */
  const rateOf = (peak: ScenarioResult | undefined): number =>
    latRate > 0 ? latRate : peak ? Math.round(peak.throughput_per_s * latFraction) : 0;
  const rate = rateOf(aip);
  switch (name) {
    case 'uws-echo':
    case 'ws-echo':
      return { [name]: await echoScenario(name, settings, echo) };
    case 'aip-json':
      return { [name]: await aipScenario('json', settings) };
    case 'aip-json-memstore':
      return { [name]: await aipScenario('json', settings, 'memory') };
    case 'aip-json-metrics-off':
      return { [name]: await aipScenario('json', settings, 'default', undefined, 'off') };
    case 'aip-msgpack':
      return { [name]: await aipScenario('msgpack', settings) };
    case 'aip-json-lat':
    case 'uws-echo-lat':
      if (rate <= 0) throw new Error('no rate: run aip-json in the same repetition, or give --lat-rate');
      return name === 'aip-json-lat'
        ? { [name]: await aipScenario('json', settings, 'default', rate) }
        : { [name]: await echoScenario('uws-echo', settings, { ...echo, rate }) };
    case 'idle-devices':
      return { [name]: await idleScenario(settings) };
    case 'channel':
      return channelScenarios(settings);
    case 'floor':
      return { [name]: await echoScenario('uws-floor', settings, echo) };
    case 'floor-lat': {
      const at = rateOf(done['floor']);
      if (at <= 0) throw new Error('no rate: run floor in the same repetition, or give --lat-rate');
      return { [name]: await echoScenario('uws-floor', settings, { ...echo, rate: at }) };
    }
    case 'http':
      return httpScenarios(settings);
  }
}

/** The issue-14 targets, from every repetition. */
function targets(
  ratioStats: Record<string, Stats>,
  runs: Record<string, ScenarioResult[]>,
): BenchReport['targets'] {
  const out: BenchReport['targets'] = {};
  const put = (key: string, target: string, values: number[], met: (m: number) => boolean): void => {
    const st = stats(values);
    out[key] = {
      target,
      median: st?.median ?? null,
      min: st?.min ?? null,
      max: st?.max ?? null,
      met: st !== null && met(st.median),
    };
  };
  const r = (k: string): number[] => ratioStats[k]?.values ?? [];
  const field = (sc: string, f: string): number[] =>
    (runs[sc] ?? []).map((x) => x[f]).filter((v): v is number => typeof v === 'number');
  put('aip-json/uws-echo:cpu', '≥ 0.50', r('aip-json/uws-echo:cpu'), (m) => m >= 0.5);
  put('aip-msgpack/aip-json:cpu', '≥ 1.25', r('aip-msgpack/aip-json:cpu'), (m) => m >= 1.25);
  put(
    'idle-devices rss_per_conn_bytes',
    '≤ 4096',
    field('idle-devices', 'rss_per_conn_bytes'),
    (m) => m <= 4096,
  );
  put('aip-json-lat p99_ms (half peak)', '≤ 2', field('aip-json-lat', 'p99_ms'), (m) => m <= 2);
  return out;
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
      settings: { ...settings, latFraction, latRate },
      reps,
      scenarios_run: selected,
      skipped: [],
      failed: [],
    },
    scenarios: {},
    ratios: {},
    ratio_stats: {},
    ratio_checks: {},
    targets: {},
    repetitions: [],
  };
  const failed = report.meta.failed as { scenario: string; error: string }[];
  const needsAipd = new Set<Scenario>([
    'aip-json',
    'aip-json-memstore',
    'aip-json-metrics-off',
    'aip-msgpack',
    'aip-json-lat',
    'idle-devices',
    'http',
    'channel',
  ]);
  const t0 = Date.now();
  const runs: Record<string, ScenarioResult[]> = {};
  for (let rep = 1; rep <= reps; rep++) {
    const repRows: Record<string, ScenarioResult> = {};
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
        const rows = await runOne(name, repRows);
        for (const [k, r] of Object.entries(rows)) {
          r.rep = rep;
          repRows[k] = r;
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
    // channel/uws-echo compares with the echo of the same 64 KiB chunks (row uws-echo-64k), not the small-frame echo.
    const ratios = { ...computeRatios(repRows), ...channelRatios(repRows) };
    report.repetitions.push({ rep, scenarios: repRows, ratios });
    for (const [a, b] of RATIO_PAIRS) {
      const ra = repRows[a];
      const rb = repRows[b];
      if (!ra || !rb || a === 'channel') continue;
      const problems = checkPair(ra, rb).map((p) => `rep ${rep}: ${p}`);
      const c = (report.ratio_checks[`${a}/${b}`] ??= { ok: true, problems: [] });
      c.problems.push(...problems);
      c.ok = c.problems.length === 0;
    }
  }
  for (const [k, rows] of Object.entries(runs)) report.scenarios[k] = medianRow(rows);
  const keys = new Set(report.repetitions.flatMap((r) => Object.keys(r.ratios)));
  for (const k of keys) {
    const st = stats(report.repetitions.map((r) => r.ratios[k]).filter((v): v is number => v !== undefined));
    if (!st) continue;
    report.ratio_stats[k] = st;
    report.ratios[k] = st.median;
  }
  report.targets = targets(report.ratio_stats, runs);
  report.meta.total_s = Math.round((Date.now() - t0) / 100) / 10;
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
