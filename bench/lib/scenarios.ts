/**
 * The bench scenarios. Each starts a fresh server process, drives it from separate load-generator
 * processes (or autocannon in the orchestrator for HTTP), and returns one or more result rows.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { AIPD_V8_FLAGS } from '../../src/cli/v8-flags.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Packr } from 'msgpackr';
import type { LoadCodec } from '../../src/cli/loadtest-core.js';
import type { LoadgenConfig } from '../loadgen.js';
import { drive, type Measured } from './driver.js';
import { runAutocannon } from './http.js';
import { sampleResultsFrame } from './echo-load.js';
import { startServer, stopChild, type StartedServer } from './proc.js';
import { readProbe } from './server-probe.js';

export interface BenchSettings {
  warmupS: number;
  durationS: number;
  /** Connections / devices for the throughput scenarios. */
  conns: number;
  /** Steps per inline plan task. */
  steps: number;
  /** Idle devices for the memory scenario. */
  idleConns: number;
  idleHoldS: number;
  httpDurationS: number;
  aipdArgs: string[];
  /** Node options for the aipd processes (`--profile DIR` → `--cpu-prof --cpu-prof-dir DIR`). */
  aipdNodeArgs: string[];
}

export interface ScenarioResult {
  throughput_per_s: number;
  p50_ms: number;
  p99_ms: number;
  server_cpu_s: number;
  server_rss_mb: number;
  connections: number;
  payload_bytes: number;
  duration_s: number;
  [extra: string]: unknown;
}

const here = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));
export const AIPD_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** `node` arguments for `aipd serve --port 0 --api-key KEY …extra`, with aipd's own V8 flags (or `nodeArgs`). */
export function aipdServeArgs(
  key: string,
  extra: readonly string[],
  nodeArgs: readonly string[] = AIPD_V8_FLAGS,
): string[] {
  return [...nodeArgs, AIPD_MAIN, 'serve', '--port', '0', '--api-key', key, ...extra];
}
const API_KEY = 'bench-key';
const MB = 1024 * 1024;
/** Server CPU microseconds per unit of throughput. */
const perUnitUs = (cpuS: number, units: number): number | null =>
  units > 0 ? Math.round((cpuS * 1e7) / units) / 10 : null;

/** A profiled server writes its CPU profile on exit, which takes longer than the usual 2 s grace. */
export const stopGraceMs = (s: BenchSettings): number =>
  s.aipdNodeArgs.includes('--cpu-prof') ? 30_000 : 2000;
const round = (v: number, d = 3): number => Math.round(v * 10 ** d) / 10 ** d;

/** Bytes of the client→server frame each round trip carries (JSON text or msgpack map). */
export function payloadBytes(codec: LoadCodec): number {
  const frame = sampleResultsFrame();
  return codec === 'json'
    ? Buffer.byteLength(JSON.stringify(frame))
    : new Packr({ useRecords: false }).pack(frame).length;
}

export function aipdAvailable(): boolean {
  return existsSync(AIPD_MAIN);
}

/**
 * Starts aipd with the default session store (SQLite, in a throwaway data dir removed when the server stops)
 * unless `extra` names another (`--store memory`).
 */
async function startAipd(s: BenchSettings, extra: readonly string[] = []): Promise<StartedServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'aipd-bench-'));
  const server = await startServer(
    aipdServeArgs(
      API_KEY,
      ['--log-level', 'silent', '--data-dir', dataDir, ...s.aipdArgs, ...extra],
      s.aipdNodeArgs,
    ),
    /listening on ws:\/\/.*:(\d+)\/ws/,
  );
  server.child.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  return server;
}

/** The load generator every throughput and latency scenario uses (both sides of every ratio). */
export const LOAD_GENERATOR = 'bench/loadgen.js (RawWs: net.Socket, TCP_NODELAY, zero mask key)';

/** One result row from a measured run; `extra` adds scenario-specific fields. */
export function row(
  m: Measured,
  conns: number,
  payload: number,
  extra: Record<string, unknown>,
): ScenarioResult {
  const thr = m.snap.round_trips / m.snap.elapsed_s;
  const fo = m.snap.frame_out_bytes ?? 0;
  const fi = m.snap.frame_in_bytes ?? 0;
  return {
    throughput_per_s: Math.round(thr),
    p50_ms: m.hist.ms(0.5),
    p99_ms: m.hist.ms(0.99),
    server_cpu_s: round(m.cpu_s, 2),
    server_rss_mb: round(m.rss_after / MB, 1),
    connections: m.connected,
    payload_bytes: payload,
    duration_s: round(m.wall_s, 2),
    per_server_cpu_s: m.cpu_s > 0 ? Math.round(m.snap.round_trips / m.cpu_s) : null,
    // Where a unit's server CPU went: user space (JS, GC, SQLite) and the kernel (syscalls, loopback TCP).
    server_sys_s: round(m.sys_s, 2),
    server_user_us_per_unit: perUnitUs(m.cpu_s - m.sys_s, m.snap.round_trips),
    server_sys_us_per_unit: perUnitUs(m.sys_s, m.snap.round_trips),
    // aipd's own view of the window (server-probe.ts): GC pauses and event-loop delay.
    ...(m.probe ?? {}),
    p90_ms: m.hist.ms(0.9),
    max_ms: round(m.hist.maxUs / 1000),
    errors: m.snap.errors,
    ...(m.snap.first_error ? { first_error: m.snap.first_error } : {}),
    requested_connections: conns,
    // What both sides of a ratio must match (bench/README.md "Keeping ratios honest"): the wire bytes of the
    // request and reply frames of one round trip in the steady state, and their mean.
    frame_out_bytes: fo,
    frame_in_bytes: fi,
    frame_bytes: fo && fi ? Math.round((fo + fi) / 2) : null,
    // The same messages as JSON text: what a binary codec's smaller frames carry.
    frame_json_bytes:
      m.snap.frame_out_json_bytes && m.snap.frame_in_json_bytes
        ? Math.round((m.snap.frame_out_json_bytes + m.snap.frame_in_json_bytes) / 2)
        : fo && fi
          ? Math.round((fo + fi) / 2)
          : null,
    load_generator: LOAD_GENERATOR,
    ...extra,
  };
}

/** Options of a reference echo run: payload size (to match an AIP run's frames) and the rate-limited mode. */
export interface EchoOptions {
  /** JSON text bytes of the echoed frame; default: the bench device's `command_results` frame. */
  payloadBytes?: number;
  /** Rate-limited mode: sends per second in total. */
  rate?: number;
}

/**
 * A reference server under the echo load generator: `uws-echo`, `ws-echo`, or `uws-floor` (the floor model,
 * bench/servers/uws-floor.ts: run as `floor` / `floor-lat`, with aipd's V8 flags, since it does aipd's kind of work).
 */
export async function echoScenario(
  name: 'uws-echo' | 'ws-echo' | 'uws-floor',
  s: BenchSettings,
  o: EchoOptions = {},
): Promise<ScenarioResult> {
  const floor = name === 'uws-floor';
  const server = await startServer(
    [...(floor ? AIPD_V8_FLAGS : []), here(`../servers/${name}.js`)],
    /^listening (\d+)$/,
  );
  const label = floor ? 'floor' : name;
  try {
    const payload = Math.max(o.payloadBytes ?? 0, payloadBytes('json'));
    const cfg: LoadgenConfig = {
      mode: 'echo',
      port: server.port,
      conns: s.conns,
      window: 1,
      payloadBytes: payload,
      deadlineS: deadline(s),
      ...(o.rate ? { rate: o.rate } : {}),
    };
    const m = await drive({
      scenario: o.rate ? `${label}-lat` : label,
      server,
      configs: [cfg],
      kind: 'load',
      warmupS: s.warmupS,
      durationS: s.durationS,
    });
    return row(m, s.conns, payload, { window: 1, ...(o.rate ? { rate_per_s: o.rate } : {}) });
  } finally {
    await stopChild(server.child, stopGraceMs(s));
  }
}

/**
 * `aip-json` / `aip-msgpack` on the default store (metrics on, the default); `store: 'memory'` gives
 * `aip-json-memstore` (same load, no disk), `metrics: 'off'` gives `aip-json-metrics-off` (same load, no /metrics).
 */
export async function aipScenario(
  codec: LoadCodec,
  s: BenchSettings,
  store: 'default' | 'memory' = 'default',
  rate?: number,
  metrics: 'on' | 'off' = 'on',
): Promise<ScenarioResult> {
  const name = `aip-${codec}${store === 'memory' ? '-memstore' : ''}${metrics === 'off' ? '-metrics-off' : ''}${rate ? '-lat' : ''}`;
  const server = await startAipd(s, [
    ...(store === 'memory' ? ['--store', 'memory'] : []),
    ...(metrics === 'off' ? ['--metrics', 'off'] : []),
  ]);
  try {
    const cfg: LoadgenConfig = {
      mode: 'aip',
      port: server.port,
      token: API_KEY,
      devices: s.conns,
      steps: s.steps,
      codec,
      idPrefix: `bench-${codec}-`,
      deadlineS: deadline(s),
      ...(rate ? { rate } : {}),
    };
    const m = await drive({
      scenario: name,
      server,
      configs: [cfg],
      kind: 'load',
      warmupS: s.warmupS,
      durationS: s.durationS,
      ...(metrics === 'on' ? { probe: () => readProbe(server.port, API_KEY) } : {}),
    });
    return row(m, s.conns, payloadBytes(codec), {
      window: 1,
      codec,
      steps_per_task: s.steps,
      tasks_completed: m.snap.tasks_completed,
      tasks_failed: m.snap.tasks_failed,
      ...(rate ? { rate_per_s: rate } : {}),
    });
  } finally {
    await stopChild(server.child, stopGraceMs(s));
  }
}

/** Max connections per load-generator process (fd limit is 20000 per process). */
const PER_LOADGEN = 9000;

export async function idleScenario(s: BenchSettings): Promise<ScenarioResult> {
  const server = await startAipd(s);
  try {
    const procs = Math.ceil(s.idleConns / PER_LOADGEN);
    const configs: LoadgenConfig[] = Array.from({ length: procs }, (_, i) => ({
      mode: 'idle',
      port: server.port,
      token: API_KEY,
      devices: Math.floor(s.idleConns / procs) + (i < s.idleConns % procs ? 1 : 0),
      steps: 1,
      codec: 'json',
      idPrefix: `idle-${i}-`,
      deadlineS: deadline(s) + 60,
    }));
    const m = await drive({
      scenario: 'idle-devices',
      server,
      configs,
      kind: 'idle',
      warmupS: 0,
      durationS: s.idleHoldS,
    });
    const delta = m.rss_after - m.rss_before;
    return {
      throughput_per_s: Math.round(m.connected / m.connect_s),
      p50_ms: m.hist.ms(0.5),
      p99_ms: m.hist.ms(0.99),
      server_cpu_s: round(m.cpu_s, 2),
      server_rss_mb: round(m.rss_after / MB, 1),
      connections: m.connected,
      payload_bytes: 0,
      duration_s: round(m.wall_s, 2),
      throughput_means:
        'connect+register per second during the connect phase; p50/p99 = heartbeat round trip, all devices at once',
      connect_server_cpu_s: round(m.connect_cpu_s, 2),
      rss_before_mb: round(m.rss_before / MB, 1),
      rss_per_conn_bytes: m.connected > 0 ? Math.round(delta / m.connected) : null,
      heartbeats_answered: m.snap.heartbeats_answered,
      connect_s: round(m.connect_s, 2),
      loadgen_processes: procs,
      errors: m.snap.errors,
      ...(m.snap.first_error ? { first_error: m.snap.first_error } : {}),
      requested_connections: s.idleConns,
    };
  } finally {
    await stopChild(server.child, stopGraceMs(s));
  }
}

export async function httpScenarios(s: BenchSettings): Promise<Record<string, ScenarioResult>> {
  const server = await startAipd(s);
  try {
    const base = `http://127.0.0.1:${server.port}`;
    return {
      'http-healthz': await runAutocannon('http-healthz', server, `${base}/healthz`, {}, s),
      'http-api-clients': await runAutocannon(
        'http-api-clients',
        server,
        `${base}/api/clients`,
        { 'X-API-Key': API_KEY },
        s,
      ),
    };
  } finally {
    await stopChild(server.child, stopGraceMs(s));
  }
}

/** Hard deadline for a load-generator child: everything it could legitimately need, plus slack. */
function deadline(s: BenchSettings): number {
  return Math.ceil(s.warmupS + s.durationS + s.idleHoldS + 120);
}
