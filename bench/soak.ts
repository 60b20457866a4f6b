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
 *
 * The pieces: bench/lib/soak-settings.ts (the command line), soak-server-process.ts (the aipd child),
 * soak-load.ts (the loads), soak-summary.ts (the printed summary and the JSON file).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, killAll } from './lib/proc.js';
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
import { int, mb, out, pct } from './lib/soak-report.js';
import { SoakServer } from './lib/soak-server-process.js';
import { durationS, settings, values } from './lib/soak-settings.js';
import { reportSoak, type Totals } from './lib/soak-summary.js';

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

async function main(): Promise<number> {
  const startedAt = new Date();
  note(`soak: starting aipd (${SERVER_ENTRY}) ...`);
  const server = await SoakServer.start({
    entry: SERVER_ENTRY,
    fromSource,
    apiKey: API_KEY,
    sampleS: settings.sampleS,
    gcEvery: settings.gcEvery,
    deadlineS: Math.ceil(durationS + settings.calibrateS + settings.drainS + 600),
    config: serverConfig,
  });
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

  const failed = reportSoak({
    startedAt,
    server,
    calibration,
    rate,
    progress,
    k,
    tracker,
    channels,
    churn,
    bad,
    soakStart,
    soakEnd,
    connectedAt,
    drainS,
    lost,
    crashed,
    crashedDuringLoad,
    exit,
    outPath,
  });
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
