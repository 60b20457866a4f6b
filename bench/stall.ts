/**
 * `npm run bench:stall` — scenario `stall-deep-frame`: how long a hostile deeply nested frame stalls other clients.
 *
 * - aipd runs as `aipd serve` in its own process (as in the other bench scenarios, default flags, so
 *   --max-payload-bytes is 100 MiB).
 * - A healthy device (lean RawWs, in this process) does heartbeat round trips back to back, all the time, and every
 *   round trip's latency is recorded with its send and receive times.
 * - An attacker (a child process: this file with `--attacker`, so building and writing its frames costs this
 *   process nothing) registers as a device and, per size, sends one text frame `[[[[…]]]]` of that many bytes
 *   (half `[`, half `]`). aipd answers it with a TOO_DEEP error frame after its byte pre-scan; the connection stays.
 * - Per size and repetition: a baseline window (--baseline-s) with no attack gives the healthy client's p50/p99;
 *   then the frame is sent, and the attack window runs from the order to send until the attacker has the error
 *   frame plus --tail-ms. The stall = the largest round trip that completed (or was still open) in the attack window
 *   minus the baseline p99; also per MiB of frame.
 *
 * Output: a table on stdout, progress on stderr, bench/results/stall-latest.json. Bounded: every wait has a
 * timeout, the attacker exits with its parent, and a watchdog ends the run.
 *
 * The two connections are in lib/stall-clients.ts, the statistics, summary rows and table in lib/stall-report.ts.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAll, rssBytes, sleep, startServer, stopChild } from './lib/proc.js';
import { note } from './lib/progress.js';
import { AIPD_MAIN, aipdAvailable } from './lib/scenarios.js';
import { API_KEY, Attacker, attacker, HealthyProbe } from './lib/stall-clients.js';
import { quantile, r2, stallRows, stallTable, type Run } from './lib/stall-report.js';

const MiB = 1024 * 1024;
const self = fileURLToPath(import.meta.url);
const cleanups: (() => void)[] = [];
function cleanup(): void {
  killAll();
  for (const f of cleanups.splice(0)) {
    try {
      f();
    } catch {
      // best effort
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The orchestrator

async function orchestrate(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      sizes: { type: 'string', default: '1,10,50,100' },
      binary: { type: 'boolean', default: false },
      reps: { type: 'string', default: '5' },
      'baseline-s': { type: 'string', default: '2' },
      'tail-ms': { type: 'string', default: '50' },
      'aipd-arg': { type: 'string', multiple: true },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(`usage: npm run bench:stall -- [--sizes 1,10,50,100] (MiB) [--binary] [--reps 5] [--baseline-s 2] [--tail-ms 50]
       [--aipd-arg X ...] [--out file]`);
    return 0;
  }
  const sizes = values.sizes.split(',').map(Number);
  // --binary: every size also as a binary frame, which uWS does not validate as UTF-8 (aipd's JSON codec still
  // pre-scans it), to tell the two costs apart
  const cases = sizes.flatMap((mib) =>
    (values.binary ? [false, true] : [false]).map((binary) => ({
      mib,
      binary,
      key: `${mib} MiB ${binary ? 'binary' : 'text'}`,
    })),
  );
  const reps = Number(values.reps);
  const baselineMs = Number(values['baseline-s']) * 1000;
  const tailMs = Number(values['tail-ms']);
  if (
    sizes.some((s) => !(s > 0 && s <= 1024)) ||
    !(reps >= 1 && reps <= 20) ||
    !(baselineMs >= 200) ||
    !(tailMs >= 0)
  ) {
    console.error('bench:stall: bad --sizes / --reps / --baseline-s / --tail-ms');
    return 2;
  }
  if (!aipdAvailable()) {
    console.error(`bench:stall: ${AIPD_MAIN} is missing; run npm run build first`);
    return 2;
  }
  const outPath =
    values.out ?? fileURLToPath(new URL('../../bench/results/stall-latest.json', import.meta.url));
  const aipdArgs = values['aipd-arg'] ?? [];
  // aipd may keep files under its working directory (a session store, its node id): give it a temporary one.
  const cwd = mkdtempSync(join(os.tmpdir(), 'aipd-stall-'));
  cleanups.push(() => rmSync(cwd, { recursive: true, force: true }));
  const server = await startServer(
    [AIPD_MAIN, 'serve', '--port', '0', '--api-key', API_KEY, '--log-level', 'silent', ...aipdArgs],
    /listening on ws:\/\/.*:(\d+)\/ws/,
    15_000,
    cwd,
  );
  const probe = await HealthyProbe.connect(server.port);
  const attacker = new Attacker(self, server.port);
  const results: Record<string, Run[]> = {};
  try {
    if ((await attacker.next(15_000)).t !== 'ready') throw new Error('attacker not ready');
    probe.start();
    await sleep(1000); // warm-up
    for (const { mib, binary, key } of cases) {
      const bytes = Math.round(mib * MiB);
      const runs: Run[] = (results[key] = []);
      for (let rep = 1; rep <= reps; rep++) {
        attacker.tell({ t: 'prepare', bytes, binary });
        const prepared = await attacker.next(60_000);
        if (prepared.t !== 'prepared') throw new Error(`attacker: unexpected ${prepared.t}`);
        note(`[stall-deep-frame] ${key}, rep ${rep}/${reps}: baseline ${baselineMs / 1000} s ...`);
        await sleep(200);
        // Only time marks are taken while the probe runs: everything is computed afterwards, so that no work of
        // this process (which also runs the healthy client) lands in a measured window.
        probe.clear();
        const b0 = performance.now();
        await sleep(baselineMs);
        const a0 = performance.now();
        attacker.tell({ t: 'fire' });
        const answered = await attacker.next(150_000);
        if (answered.t !== 'answered') throw new Error(`attacker: unexpected ${answered.t}`);
        await sleep(tailMs);
        const a1 = performance.now();
        const openAtA1 = probe.openFor(a1) > 0 && probe.openFor(a1) <= a1 - a0 ? probe.openFor(a1) : 0;
        // the noise floor: a window of the same length right after, nothing sent
        await sleep(a1 - a0);
        const q1 = performance.now();
        const openAtQ1 = probe.openFor(q1) > 0 && probe.openFor(q1) <= q1 - a1 ? probe.openFor(q1) : 0;
        const all = probe.lat.map((_, i) => i);
        // baseline: round trips wholly inside [b0, a0]; attack and quiet windows: round trips that ended inside them
        const base = all
          .filter((i) => probe.sent[i]! >= b0 && probe.recv[i]! <= a0)
          .map((i) => probe.lat[i]!)
          .sort((a, b) => a - b);
        const idx = all.filter((i) => probe.recv[i]! > a0 && probe.recv[i]! <= a1);
        const worst = idx.reduce((w, i) => (w < 0 || probe.lat[i]! > probe.lat[w]! ? i : w), -1);
        const attackMax = Math.max(openAtA1, ...idx.map((i) => probe.lat[i]!));
        const worstSentAt = worst >= 0 && probe.lat[worst]! >= openAtA1 ? probe.sent[worst]! - a0 : null;
        const quietMax = Math.max(
          openAtQ1,
          ...all.filter((i) => probe.recv[i]! > a1 && probe.recv[i]! <= q1).map((i) => probe.lat[i]!),
        );
        const p99 = quantile(base, 0.99);
        const during = idx;
        const run: Run = {
          baseline_n: base.length,
          baseline_p50_ms: r2(quantile(base, 0.5)),
          baseline_p99_ms: r2(p99),
          baseline_max_ms: r2(base[base.length - 1] ?? NaN),
          attack_n: during.length,
          attack_max_ms: r2(attackMax),
          stall_ms: r2(Math.max(0, attackMax - p99)),
          quiet_stall_ms: r2(Math.max(0, quietMax - p99)),
          worst_sent_after_ms: worstSentAt === null ? null : r2(worstSentAt),
          written_ms: r2(answered.written_ms),
          answered_ms: r2(answered.answered_ms),
          answer: answered.answer,
          server_rss_mb: r2(rssBytes(server.pid) / MiB),
        };
        runs.push(run);
        note(
          `[stall-deep-frame] ${key}, rep ${rep}/${reps}: baseline p99 ${run.baseline_p99_ms} ms, max during attack ` +
            `${run.attack_max_ms} ms → stall ${run.stall_ms} ms; frame written in ${run.written_ms} ms, ` +
            `answered after ${run.answered_ms} ms (${run.answer.slice(0, 90)}); no-attack window: ${run.quiet_stall_ms} ms`,
        );
        if (answered.closed) throw new Error('aipd closed the attacker connection');
        if (probe.closedWith !== null)
          throw new Error(`aipd closed the healthy connection (code ${probe.closedWith})`);
        await sleep(300);
      }
    }
  } finally {
    probe.stop();
    await attacker.stop();
    await stopChild(server.child);
  }
  const rows = stallRows(cases, results);
  const lines = stallTable(rows, reps);
  process.stdout.write(lines.join('\n') + '\n');
  const report = {
    meta: {
      scenario: 'stall-deep-frame',
      node: process.version,
      cpus: os.cpus().length,
      loadavg: os.loadavg(),
      date: new Date().toISOString(),
      settings: {
        sizes_mib: sizes,
        binary: values.binary,
        reps,
        baseline_s: baselineMs / 1000,
        tail_ms: tailMs,
        aipd_args: aipdArgs,
      },
    },
    rows,
    runs: results,
  };
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, JSON.stringify(report, null, 2) + '\n');
  note(`results written to ${outPath}`);
  return 0;
}

if (process.argv[2] === '--attacker') {
  attacker(Number(process.argv[3])).catch((err: unknown) => {
    process.send?.({ t: 'fatal', message: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  });
} else {
  setTimeout(() => {
    console.error('bench:stall: watchdog fired');
    cleanup();
    process.exit(3);
  }, 20 * 60_000).unref();
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  orchestrate().then(
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
}
