/**
 * `npm run soak -- --minutes N`: a long mixed load against one aipd process, watching its memory.
 *
 * aipd runs in its own process (bench/soak-server.ts, with --expose-gc) and prints its memory every --sample-s;
 * this process drives, on 127.0.0.1 only: plan tasks from src/client devices and controllers at about half of
 * the server's peak (from a calibration run, see below), heartbeats, echoing data channels, reconnect churn
 * and bad frames (bench/lib/soak-load.ts). Every task is tracked to its task_end.
 *
 * Calibration (unless --rate is given): the same plan-task load runs unpaced for --calibrate-s; the server's
 * peak is estimated as command round trips per server-CPU-second (aipd's frame handling is single-threaded, so
 * one busy core is its ceiling), and the soak paces the devices' answers at --load-fraction (0.5) of it, capped
 * at 80 % of the unpaced rate this process reached (so the pacer, not this process, sets the rate).
 *
 * Output (stdout): the calibration, a progress line per minute (every 15 s for runs under 2 minutes), then the
 * memory table, RSS and heapUsed slopes after the warm-up, errors by kind and task counts ("tasks lost: N").
 * Full samples: bench/results/soak-latest.json. Exit status 1 when a task was lost or the server died.
 * Bounded: the server exits when this process goes away or at its deadline; a watchdog ends this process too.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuSeconds, killAll, track } from './lib/proc.js';
import { note } from './lib/progress.js';
import {
  BadFrameLoad,
  ChannelLoad,
  ChurnLoad,
  Counter,
  Pacer,
  sleep,
  TaskLoad,
  TaskTracker,
  type Endpoint,
  type LostTask,
  type SoakCounters,
} from './lib/soak-load.js';
import {
  fmtSlope,
  int,
  mb,
  memoryRows,
  slope,
  table,
  type MemSample,
  type Slope,
} from './lib/soak-report.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string' },
    'calibrate-s': { type: 'string' },
    rate: { type: 'string' },
    'load-fraction': { type: 'string' },
    devices: { type: 'string' },
    loops: { type: 'string' },
    'heartbeat-ms': { type: 'string' },
    'channel-pairs': { type: 'string' },
    'channel-kib': { type: 'string' },
    'channel-rate-kib': { type: 'string' },
    'hold-s': { type: 'string' },
    'churn-per-s': { type: 'string' },
    'bad-per-s': { type: 'string' },
    'sample-s': { type: 'string' },
    'gc-every': { type: 'string' },
    'drain-s': { type: 'string' },
    store: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean' },
  },
});

const USAGE = `usage: npm run soak -- --minutes N [options]
  --minutes N            soak duration after calibration (default 1; 0.5 works)
  --calibrate-s S        unpaced calibration run (default 10)
  --rate R               fixed command round trips/s for the plan tasks (skips the calibration)
  --load-fraction F      share of the estimated server peak to drive (default 0.5)
  --devices N            task devices, one controller each (default 4)
  --loops N              plan tasks each controller keeps running (default 4)
  --heartbeat-ms MS      client heartbeat interval (default 2000)
  --channel-pairs N      device/controller pairs with data channels (default 2)
  --channel-kib K        KiB per channel, echoed back (default 1024)
  --channel-rate-kib K   KiB/s each pair writes (default 512)
  --hold-s S             lifetime of a held task carrying channels (default 30)
  --churn-per-s R        short-lived connections per second (default 2)
  --bad-per-s R          bad frames per second (default 5)
  --sample-s S           server memory sample interval (default 5)
  --gc-every N           every Nth sample is taken after a full gc() (default 6, 2 for runs under 5 min; 0 = never)
  --drain-s S            after the load, how long tasks may take to end before they count as lost (default 30)
  --store S              the server's session store (its --store; default: the server's own default), with
                         --data-dir in a temporary folder that is removed at the end
  --out FILE             JSON output (default bench/results/soak-latest.json)`;

if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

function num(name: string, raw: string | undefined, def: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`soak: bad value ${JSON.stringify(raw)} for --${name} (expected ${min}..${max})\n${USAGE}`);
    process.exit(2);
  }
  return v;
}

const settings = {
  minutes: num('minutes', values.minutes, 1, 0.1, 24 * 60),
  calibrateS: num('calibrate-s', values['calibrate-s'], 10, 2, 600),
  rate: values.rate === undefined ? null : num('rate', values.rate, 0, 1, 1e6),
  loadFraction: num('load-fraction', values['load-fraction'], 0.5, 0.05, 1),
  devices: num('devices', values.devices, 4, 1, 64),
  loops: num('loops', values.loops, 4, 1, 64),
  heartbeatMs: num('heartbeat-ms', values['heartbeat-ms'], 2000, 100, 60_000),
  channelPairs: num('channel-pairs', values['channel-pairs'], 2, 0, 16),
  channelKiB: num('channel-kib', values['channel-kib'], 1024, 16, 1024 * 1024),
  channelRateKiB: num('channel-rate-kib', values['channel-rate-kib'], 512, 16, 1024 * 1024),
  holdS: num('hold-s', values['hold-s'], 30, 1, 500),
  churnPerS: num('churn-per-s', values['churn-per-s'], 2, 0, 200),
  badPerS: num('bad-per-s', values['bad-per-s'], 5, 0, 500),
  sampleS: num('sample-s', values['sample-s'], 5, 1, 600),
  gcEvery: 0,
  drainS: num('drain-s', values['drain-s'], 30, 1, 600),
};
// Short runs need post-GC samples more often to have a few after the warm-up.
settings.gcEvery = num('gc-every', values['gc-every'], settings.minutes < 5 ? 2 : 6, 0, 1000);
const durationS = settings.minutes * 60;
const API_KEY = 'soak-key';

// The server entry sits next to this file: soak-server.js under dist/, soak-server.ts when run with tsx.
const self = fileURLToPath(import.meta.url);
const fromSource = self.endsWith('.ts');
const SERVER_ENTRY = join(dirname(self), fromSource ? 'soak-server.ts' : 'soak-server.js');
const ROOT = join(dirname(self), fromSource ? '..' : '../..');
const outPath = values.out ?? join(ROOT, 'bench/results/soak-latest.json');
// The server's data folder (session store files, node id) goes to a fresh temporary folder, removed at the end.
const dataDir = mkdtempSync(join(os.tmpdir(), 'aipd-soak-'));
const serverConfig: Record<string, unknown> = { dataDir, ...(values.store ? { store: values.store } : {}) };

// ---------------------------------------------------------------------------------------------------------------

interface RawSample {
  t: string;
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

/** The aipd child: spawn, its port, its samples, its exit. */
class SoakServer {
  readonly samples: MemSample[] = [];
  phase: MemSample['phase'] = 'idle';
  /** Date.now() at the start of the soak phase (sample times are relative to it). */
  t0 = Date.now();
  exited: { code: number | null; signal: string | null } | null = null;
  readonly stderr: string[] = [];
  gcAvailable = false;
  /** The extra configuration keys as the server understood them (null: unknown to this server version). */
  config: Record<string, unknown> = {};
  private sampleWaiters: (() => void)[] = [];

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }

  static start(): Promise<SoakServer> {
    const deadline = Math.ceil(durationS + settings.calibrateS + settings.drainS + 600);
    const args = [
      ...(fromSource ? ['--import', 'tsx'] : []),
      '--expose-gc',
      SERVER_ENTRY,
      '--api-key',
      API_KEY,
      '--sample-ms',
      String(settings.sampleS * 1000),
      '--gc-every',
      String(settings.gcEvery),
      '--deadline-s',
      String(deadline),
      '--config-json',
      JSON.stringify(serverConfig),
    ];
    const child = track(spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
    return new Promise((resolve, reject) => {
      let server: SoakServer | null = null;
      const stderr: string[] = [];
      createInterface({ input: child.stderr! }).on('line', (l) => {
        stderr.push(l);
        if (stderr.length > 30) stderr.shift();
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`soak server printed no port within 20 s; stderr: ${stderr.join(' | ')}`));
      }, 20_000);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        let m: Record<string, unknown>;
        try {
          m = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return;
        }
        if (m.t === 'listening' && !server) {
          clearTimeout(timer);
          server = new SoakServer(child, Number(m.port));
          server.gcAvailable = m.gc === true;
          server.config = (m.config as Record<string, unknown> | undefined) ?? {};
          server.stderr.push(...stderr);
          stderr.length = 0;
          resolve(server);
        } else if (m.t === 'sample' && server) server.onSample(m as unknown as RawSample);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (server) {
          server.stderr.push(...stderr);
          server.exited = { code, signal };
          for (const w of server.sampleWaiters.splice(0)) w();
        } else
          reject(
            new Error(
              `soak server exited early (code ${code}, signal ${signal}); stderr: ${stderr.join(' | ')}`,
            ),
          );
      });
    });
  }

  /** Resolves at the next sample (or when the server exits), at most after `timeoutMs`. */
  nextSample(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.sampleWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  get last(): MemSample | undefined {
    return this.samples[this.samples.length - 1];
  }

  async stop(): Promise<{ code: number | null; signal: string | null }> {
    if (this.exited) return this.exited;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.kill('SIGTERM');
    const k = setTimeout(() => this.child.kill('SIGKILL'), 8000);
    await exited;
    clearTimeout(k);
    return this.exited ?? { code: null, signal: null };
  }

  private onSample(m: RawSample): void {
    this.samples.push({
      t_s: Math.round((Date.now() - this.t0) / 100) / 10,
      phase: this.phase,
      n: m.n,
      gc: m.gc,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      clients: m.clients,
      channels: m.channels,
    });
    for (const w of this.sampleWaiters.splice(0)) w();
  }
}

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return null;
  }
}

const out = (line = ''): void => {
  process.stdout.write(line + '\n');
};
const pct = (v: number): string => `${Math.round(v * 100)} %`;

// ---------------------------------------------------------------------------------------------------------------

interface Totals {
  at: number;
  cpu: number;
  steps: number;
  started: number;
  completed: number;
  failedExpected: number;
  failedUnexpected: number;
  refused: number;
  chOk: number;
  chFailed: number;
  chBytes: number;
  hb: number;
  churn: number;
  bad: number;
  errors: number;
}

async function main(): Promise<number> {
  const startedAt = new Date();
  note(`soak: starting aipd (${SERVER_ENTRY}) ...`);
  const server = await SoakServer.start();
  if (server.samples.length === 0) await server.nextSample(5000);
  const ep: Endpoint = {
    host: '127.0.0.1',
    port: server.port,
    token: API_KEY,
    url: `ws://127.0.0.1:${server.port}/ws`,
  };
  out(
    `soak: aipd pid ${server.pid} on ${ep.url}; memory sampled every ${settings.sampleS} s` +
      (server.gcAvailable && settings.gcEvery > 0
        ? `; one sample in ${settings.gcEvery} (every ${settings.sampleS * settings.gcEvery} s) is taken right after a full gc()`
        : ' (no forced GC)'),
  );
  out(
    `soak: server configuration beyond the defaults: ${JSON.stringify(server.config)} (null = a key this aipd does not know)`,
  );

  const k: SoakCounters = { errors: new Counter(), heartbeats: { answered: 0, clients: 0 }, stopping: false };
  const tracker = new TaskTracker();
  const pacer = new Pacer();
  const tasks = new TaskLoad(
    ep,
    { devices: settings.devices, loopsPerController: settings.loops, heartbeatMs: settings.heartbeatMs },
    tracker,
    pacer,
    k,
  );
  const channels = new ChannelLoad(
    ep,
    {
      pairs: settings.channelPairs,
      channelBytes: settings.channelKiB * 1024,
      rate: settings.channelRateKiB * 1024,
      holdS: settings.holdS,
      heartbeatMs: settings.heartbeatMs,
    },
    tracker,
    k,
  );
  const churn = new ChurnLoad(ep, settings.churnPerS, settings.heartbeatMs, tracker, k);
  const bad = new BadFrameLoad(ep, settings.badPerS, k);
  await tasks.connect();
  await channels.connect();
  await churn.connect();
  await bad.connect();
  const connectedAt = Date.now();

  // ---- calibration
  let rate: number;
  let calibration: Record<string, unknown>;
  if (settings.rate !== null) pacer.setRate(settings.rate);
  tasks.start();
  if (settings.rate !== null) {
    rate = settings.rate;
    calibration = { skipped: true, rate };
    out(`soak: fixed rate ${int(rate)} command round trips/s (--rate; no calibration)`);
  } else {
    server.phase = 'calibration';
    note(`soak: calibrating for ${settings.calibrateS} s (plan tasks only, unpaced) ...`);
    await sleep(1000);
    const s0 = tasks.steps;
    const c0 = cpuSeconds(server.pid);
    const w0 = performance.now();
    await sleep(settings.calibrateS * 1000);
    const steps = tasks.steps - s0;
    const cpu = cpuSeconds(server.pid) - c0;
    const wall = (performance.now() - w0) / 1000;
    const unpaced = steps / wall;
    const peak = cpu > 0 ? steps / cpu : unpaced;
    const wanted = settings.loadFraction * peak;
    const cap = 0.8 * unpaced;
    rate = Math.max(1, Math.min(wanted, cap));
    calibration = {
      seconds: Math.round(wall * 10) / 10,
      steps,
      unpaced_per_s: Math.round(unpaced),
      server_cpu_s: Math.round(cpu * 100) / 100,
      server_cpu_share: Math.round((cpu / wall) * 100) / 100,
      peak_est_per_server_cpu_s: Math.round(peak),
      load_fraction: settings.loadFraction,
      wanted_per_s: Math.round(wanted),
      cap_per_s: Math.round(cap),
      rate_per_s: Math.round(rate),
      capped: wanted > cap,
    };
    out(
      `soak: calibration ${wall.toFixed(1)} s, ${settings.devices * settings.loops} plan-task loops unpaced: ` +
        `${int(unpaced)} command round trips/s with aipd at ${pct(cpu / wall)} of one core ` +
        `→ server peak ≈ ${int(peak)} round trips per server-CPU-second`,
    );
    out(
      `soak: target ${pct(settings.loadFraction)} of that = ${int(wanted)}/s` +
        (wanted > cap
          ? `, capped at 80 % of the unpaced rate this process reached (${int(cap)}/s): the client, not aipd, was the limit`
          : ` (under the cap of 80 % of the unpaced rate, ${int(cap)}/s)`) +
        `; the other loads (heartbeats, channels, churn, bad frames) come on top at fixed rates`,
    );
  }
  pacer.setRate(rate);

  // ---- soak
  server.t0 = Date.now();
  server.phase = 'soak';
  channels.start();
  churn.start();
  bad.start();
  out(
    `soak: ${settings.minutes} min: plan tasks at ${int(rate)} steps/s (${settings.devices} devices × ${settings.loops} loops, 3–8 steps), ` +
      `heartbeats every ${settings.heartbeatMs} ms, ${settings.channelPairs} channel pairs × ${settings.channelRateKiB} KiB/s echoed, ` +
      `${settings.churnPerS} churn connections/s, ${settings.badPerS} bad frames/s`,
  );

  let lastCpu = 0;
  /** The server's CPU seconds; the last value read once it is gone. */
  const serverCpu = (): number => {
    try {
      if (!server.exited) lastCpu = cpuSeconds(server.pid);
    } catch {
      // exited in between
    }
    return lastCpu;
  };
  const totals = (): Totals => ({
    at: Date.now(),
    cpu: serverCpu(),
    steps: tasks.steps,
    started: tracker.started.total(),
    completed: tracker.completed.total(),
    failedExpected: tracker.failedExpected.total(),
    failedUnexpected: tracker.failedUnexpected.total(),
    refused: tracker.refused.total(),
    chOk: channels.ok,
    chFailed: channels.failed.total(),
    chBytes: channels.bytesOut + channels.bytesEchoed,
    hb: k.heartbeats.answered,
    churn: churn.cycles.total(),
    bad: bad.sent.total(),
    errors: k.errors.total(),
  });
  const progress: Record<string, unknown>[] = [];
  const soakStart = totals();
  let prev = soakStart;
  const everyS = settings.minutes >= 2 ? 60 : 15;
  const end = server.t0 + durationS * 1000;
  let nextProgress = server.t0 + everyS * 1000;
  while (Date.now() < end && !server.exited) {
    await sleep(Math.min(250, end - Date.now()));
    if (Date.now() >= nextProgress || Date.now() >= end) {
      if (server.exited) break;
      nextProgress += everyS * 1000;
      const cur = totals();
      const dt = (cur.at - prev.at) / 1000;
      const s = server.last;
      const row = {
        t_s: Math.round((cur.at - server.t0) / 1000),
        rss_mb: s ? Number(mb(s.rss)) : null,
        heap_used_mb: s ? Number(mb(s.heapUsed)) : null,
        steps_per_s: Math.round((cur.steps - prev.steps) / dt),
        tasks_started: cur.started - prev.started,
        tasks_completed: cur.completed - prev.completed,
        tasks_failed_expected: cur.failedExpected - prev.failedExpected,
        tasks_failed_unexpected: cur.failedUnexpected - prev.failedUnexpected,
        tasks_pending: tracker.pending,
        channels_ok: cur.chOk - prev.chOk,
        channels_failed: cur.chFailed - prev.chFailed,
        channel_mib_per_s: Math.round(((cur.chBytes - prev.chBytes) / dt / 1024 / 1024) * 100) / 100,
        heartbeats: cur.hb - prev.hb,
        churn: cur.churn - prev.churn,
        bad_frames: cur.bad - prev.bad,
        errors: cur.errors - prev.errors,
        server_cpu: Math.round(((cur.cpu - prev.cpu) / dt) * 100) / 100,
        clients: s?.clients ?? null,
      };
      progress.push(row);
      const min = (row.t_s / 60).toFixed(row.t_s % 60 === 0 ? 0 : 2);
      out(
        `[${min}/${settings.minutes} min] rss ${row.rss_mb} MB, heapUsed ${row.heap_used_mb} MB | ` +
          `${int(row.steps_per_s)} steps/s | tasks +${row.tasks_started} started, +${row.tasks_completed} ok, ` +
          `+${row.tasks_failed_expected} churn-killed, +${row.tasks_failed_unexpected} unexpected | ` +
          `channels +${row.channels_ok} ok/+${row.channels_failed} failed, ${row.channel_mib_per_s} MiB/s | ` +
          `hb +${row.heartbeats} | churn +${row.churn} | bad frames +${row.bad_frames} | errors +${row.errors} | ` +
          `aipd CPU ${pct(row.server_cpu)} | ${row.clients} clients`,
      );
      prev = cur;
    }
  }
  const soakEnd = totals();
  const crashedDuringLoad = server.exited !== null;

  // ---- drain: no new work; every started task must still end
  server.phase = 'drain';
  note('soak: load stopped; waiting for the remaining tasks to end ...');
  const stopped = Promise.all([tasks.stop(), channels.stop(), churn.stop(), bad.stop()]);
  pacer.releaseAll();
  const drainEnd = Date.now() + (crashedDuringLoad ? 2000 : settings.drainS * 1000);
  while (Date.now() < drainEnd && tracker.pending > 0 && !server.exited) await sleep(50);
  if (tracker.pending > 0) channels.releaseAll();
  const lost: LostTask[] = tracker.abandon();
  await Promise.race([stopped, sleep(5000)]);
  const drainS = Math.round((Date.now() - soakEnd.at) / 100) / 10;
  if (!server.exited) await server.nextSample(settings.sampleS * 1000 + 2000); // a sample after the drain

  k.stopping = true;
  await Promise.race([Promise.all([tasks.close(), channels.close(), churn.close()]), sleep(5000)]);
  bad.close();
  pacer.stop();
  const crashed = server.exited;
  const exit = await server.stop();

  // ---- report
  const samples = server.samples;
  const soakSamples = samples.filter((s) => s.phase === 'soak');
  const warmupS = settings.minutes >= 2 ? 60 : Math.round(durationS / 3);
  const steady = soakSamples.filter((s) => s.t_s >= warmupS);
  const steadyGc = steady.filter((s) => s.gc);
  const slopes: Record<string, Slope | null> = {
    rss: slope(steady, 'rss'),
    heapUsed: slope(steady, 'heapUsed'),
    heapUsed_after_gc: slope(steadyGc, 'heapUsed'),
  };
  const wall = (soakEnd.at - soakStart.at) / 1000;
  const stepsRate = (soakEnd.steps - soakStart.steps) / wall;
  const cpuShare = (soakEnd.cpu - soakStart.cpu) / wall;
  // heartbeats run from the connect (before the calibration) to the close
  const hbExpected = (k.heartbeats.clients * (Date.now() - connectedAt)) / settings.heartbeatMs;

  out('');
  out(`== aipd soak: ${settings.minutes} min of load${crashed ? ' — SERVER DIED' : ''} ==`);
  out(
    `load: ${int(stepsRate)} steps/s (target ${int(rate)}), aipd CPU ${crashedDuringLoad ? 'n/a' : pct(cpuShare)} of one core on average; ` +
      `${channels.opened} channels opened, ${channels.ok} echoed intact, ${mb(channels.bytesOut + channels.bytesEchoed)} MB through channels; ` +
      `${k.heartbeats.answered} heartbeats answered (${k.heartbeats.clients} clients every ${settings.heartbeatMs} ms: ` +
      `≈ ${int(hbExpected)} expected); ` +
      `${churn.cycles.total()} churn cycles; ${bad.sent.total()} bad frames + ${bad.oneShots.total()} one-shot bad connections`,
  );
  out('');
  out('memory of the aipd process (MB = 2^20 bytes; "gc" = sampled right after a forced full GC):');
  const rows = memoryRows(samples, durationS);
  out(
    table(
      [
        'point',
        't s',
        'RSS MB',
        'heapUsed MB',
        'heapTotal MB',
        'external MB',
        'arrayBuffers MB',
        'clients',
        'channels',
        'gc',
      ],
      rows.map(({ label, s }) => [
        label,
        String(Math.round(s.t_s)),
        mb(s.rss),
        mb(s.heapUsed),
        mb(s.heapTotal),
        mb(s.external),
        mb(s.arrayBuffers),
        String(s.clients),
        String(s.channels),
        s.gc ? 'gc' : '',
      ]),
    ),
  );
  out('');
  out(`least-squares slopes over the soak, excluding the first ${warmupS} s (warm-up):`);
  out(`  RSS:                 ${fmtSlope(slopes.rss ?? null)}`);
  out(`  heapUsed:            ${fmtSlope(slopes.heapUsed ?? null)}`);
  out(`  heapUsed after GC:   ${fmtSlope(slopes.heapUsed_after_gc ?? null)}`);
  out('');
  out('unexpected errors (by kind):');
  const errs = k.errors.entries();
  const churnFail = churn.failures.entries();
  const chFail = channels.failed.entries();
  if (errs.length + churnFail.length + chFail.length === 0) out('  none');
  for (const [e, n] of errs) out(`  ${String(n).padStart(6)}  ${e}`);
  for (const [e, n] of churnFail) out(`  ${String(n).padStart(6)}  churn cycle failed: ${e}`);
  for (const [e, n] of chFail) out(`  ${String(n).padStart(6)}  channel failed: ${e}`);
  out('');
  out('bad frames and what aipd answered (expected: an error frame each; one-shots: the close code):');
  for (const [e, n] of bad.answers.entries()) out(`  ${String(n).padStart(6)}  ${e}`);
  for (const [e, n] of bad.oneShots.entries()) out(`  ${String(n).padStart(6)}  ${e}`);
  if (bad.unanswered) out(`  ${String(bad.unanswered).padStart(6)}  unanswered`);
  out('');
  out('churn cycles (short-lived connections):');
  for (const [e, n] of churn.cycles.entries()) out(`  ${String(n).padStart(6)}  ${e}`);
  if (churn.skipped) out(`  ${String(churn.skipped).padStart(6)}  skipped (8 cycles already in flight)`);
  out('');
  const started = tracker.started.total();
  out('tasks:');
  out(
    table(
      ['kind', 'started', 'completed', 'failed, expected (churn kill)', 'failed, unexpected', 'refused'],
      [...(['plan', 'hold', 'churn'] as const), 'all'].map((kind) => {
        const f = (c: Counter): string =>
          String(
            kind === 'all'
              ? c.total()
              : c
                  .entries()
                  .filter(([key]) => key === kind || key.startsWith(`${kind}:`))
                  .reduce((a, [, n]) => a + n, 0),
          );
        return [
          kind,
          f(tracker.started),
          f(tracker.completed),
          f(tracker.failedExpected),
          f(tracker.failedUnexpected),
          f(tracker.refused),
        ];
      }),
    ),
  );
  for (const [e, n] of tracker.failedExpected.entries())
    out(`  expected failure   ${String(n).padStart(6)}  ${e}`);
  for (const [e, n] of tracker.failedUnexpected.entries())
    out(`  UNEXPECTED failure ${String(n).padStart(6)}  ${e}`);
  for (const [e, n] of tracker.refused.entries()) out(`  refused            ${String(n).padStart(6)}  ${e}`);
  for (const [e, n] of tracker.strayEnds.entries())
    out(`  stray              ${String(n).padStart(6)}  ${e}`);
  const lostStarted = lost.filter((t) => t.acked);
  const lostUnacked = lost.filter((t) => !t.acked);
  out(
    crashed
      ? `tasks lost: ${lostStarted.length} (started, no task_end: the server died)`
      : `tasks lost: ${lostStarted.length} (started, no task_end within ${settings.drainS} s after the load stopped; drain took ${drainS} s)`,
  );
  if (lostUnacked.length) out(`task requests unanswered (no ACK, no error): ${lostUnacked.length}`);
  for (const t of lost.slice(0, 10))
    out(`  lost: ${t.sid} (${t.kind}, ${t.acked ? 'acked' : 'no ACK'}, ${t.age_s} s old)`);
  if (crashed)
    out(
      `SERVER DIED: code ${crashed.code}, signal ${crashed.signal}; stderr: ${server.stderr.slice(-10).join(' | ')}`,
    );
  else if (exit.code !== 0) out(`aipd exited with code ${exit.code} (signal ${exit.signal}) on SIGTERM`);

  const nothingRan = tracker.completed.total() === 0;
  const failed = lostStarted.length > 0 || lostUnacked.length > 0 || crashed !== null || nothingRan;
  const unexpected =
    k.errors.total() + tracker.failedUnexpected.total() + tracker.refused.total() + churn.failures.total();
  out(
    `result: ${failed ? 'FAIL' : 'ok'} (${started} tasks started, ${tracker.completed.total()} completed` +
      `${nothingRan ? ', none completed' : ''}; ${unexpected} unexpected errors/failures listed above)`,
  );

  const report = {
    meta: {
      node: process.version,
      cpus: os.cpus().length,
      date: startedAt.toISOString(),
      commit: gitCommit(),
      settings,
      server_pid: server.pid,
      gc_every_sample: server.gcAvailable ? settings.gcEvery : 0,
      warmup_s: warmupS,
      calibration,
    },
    summary: {
      ok: !failed,
      crashed,
      server_exit: exit,
      steps_per_s: Math.round(stepsRate),
      target_steps_per_s: Math.round(rate),
      server_cpu_share: Math.round(cpuShare * 100) / 100,
      memory: rows.map(({ label, s }) => ({ point: label, ...s })),
      slopes_mb_per_hour: slopes,
      errors: k.errors.toJSON(),
      churn_failures: churn.failures.toJSON(),
      channel_failures: channels.failed.toJSON(),
      tasks: {
        started: tracker.started.toJSON(),
        completed: tracker.completed.toJSON(),
        failed_expected: tracker.failedExpected.toJSON(),
        failed_unexpected: tracker.failedUnexpected.toJSON(),
        refused: tracker.refused.toJSON(),
        stray_task_ends: tracker.strayEnds.toJSON(),
        lost: lostStarted.length,
        unanswered_requests: lostUnacked.length,
        lost_list: lost,
      },
      channels: {
        opened: channels.opened,
        ok: channels.ok,
        bytes_out: channels.bytesOut,
        bytes_echoed: channels.bytesEchoed,
      },
      heartbeats: k.heartbeats,
      churn: { cycles: churn.cycles.toJSON(), skipped: churn.skipped },
      bad_frames: {
        sent: bad.sent.toJSON(),
        answers: bad.answers.toJSON(),
        one_shots: bad.oneShots.toJSON(),
        unanswered: bad.unanswered,
      },
    },
    progress,
    samples,
  };
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, JSON.stringify(report, null, 2) + '\n');
  note(`soak: samples and summary written to ${outPath}`);
  return failed ? 1 : 0;
}

// A watchdog: whatever happens, this process ends.
const watchdog = setTimeout(
  () => {
    console.error('soak: watchdog fired; killing everything');
    cleanup();
    process.exit(3);
  },
  (durationS + settings.calibrateS + settings.drainS + 180) * 1000,
);
watchdog.unref();
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

function cleanup(): void {
  killAll();
  try {
    rmSync(dataDir, { recursive: true, force: true });
  } catch {
    // best effort
  }
}

main().then(
  (code) => {
    cleanup();
    process.exit(code);
  },
  (err: unknown) => {
    console.error(err);
    cleanup();
    process.exit(1);
  },
);
