/**
 * The end of `npm run soak`: the printed summary (load, memory table, slopes, errors, bad frames, churn, tasks,
 * the result line) and the JSON file with the settings, the summary, the progress rows and every sample.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname } from 'node:path';
import { gitCommit } from './proc.js';
import { note } from './progress.js';
import type { BadFrameLoad } from './soak-bad-frames.js';
import type { ChannelLoad } from './soak-channel-load.js';
import type { ChurnLoad } from './soak-churn-load.js';
import type { Counter, SoakCounters } from './soak-counters.js';
import { fmtSlope, int, mb, memoryRows, out, pct, slope, table, type Slope } from './soak-report.js';
import type { SoakServer } from './soak-server-process.js';
import { durationS, settings } from './soak-settings.js';
import type { LostTask, TaskTracker } from './soak-task-tracker.js';

/** The soak's running totals at one moment (progress rows and rates are differences of two). */
export interface Totals {
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

/** Everything the summary reads from a finished soak. */
export interface SoakRun {
  startedAt: Date;
  server: SoakServer;
  calibration: Record<string, unknown>;
  /** The plan tasks' target rate (command round trips/s). */
  rate: number;
  progress: Record<string, unknown>[];
  k: SoakCounters;
  tracker: TaskTracker;
  channels: ChannelLoad;
  churn: ChurnLoad;
  bad: BadFrameLoad;
  soakStart: Totals;
  soakEnd: Totals;
  /** Date.now() when every persistent client was connected. */
  connectedAt: number;
  /** Seconds the drain took. */
  drainS: number;
  /** The tasks given up on after the drain. */
  lost: LostTask[];
  /** The server's exit when it died before the soak stopped it, else null. */
  crashed: SoakServer['exited'];
  crashedDuringLoad: boolean;
  /** The server's exit on SIGTERM (or its earlier one). */
  exit: NonNullable<SoakServer['exited']>;
  /** The JSON output file. */
  outPath: string;
}

/** Prints the summary and writes the JSON file; returns true when the soak failed (a task lost, the server died). */
export function reportSoak(run: SoakRun): boolean {
  const {
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
  } = run;
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
  return failed;
}
