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
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildFrame, RawWs } from '../src/cli/loadtest-ws.js';
import { killAll, rssBytes, sleep, startServer, stopChild, track } from './lib/proc.js';
import { note } from './lib/progress.js';
import { AIPD_MAIN, aipdAvailable } from './lib/scenarios.js';
import { deviceRegister } from './lib/register.js';

const API_KEY = 'bench-key';
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

type ToAttacker = { t: 'prepare'; bytes: number; binary: boolean } | { t: 'fire' };
type FromAttacker =
  | { t: 'ready' }
  | { t: 'prepared'; bytes: number; build_ms: number }
  | { t: 'answered'; written_ms: number; answered_ms: number; answer: string; closed: boolean }
  | { t: 'fatal'; message: string };

// ---------------------------------------------------------------------------------------------------------------
// The attacker (child process)

/** One masked (zero key) text frame whose payload is `bytes` bytes of `[` then `]`, built without a copy. */
function deepFrame(bytes: number, binary: boolean): Buffer {
  const head = 14;
  const buf = Buffer.allocUnsafe(head + bytes);
  buf[0] = binary ? 0x82 : 0x81; // FIN + binary or text
  buf[1] = 0x80 | 127;
  buf.writeUInt32BE(Math.floor(bytes / 2 ** 32), 2);
  buf.writeUInt32BE(bytes >>> 0, 6);
  buf.writeUInt32BE(0, 10); // zero mask key
  const half = Math.floor(bytes / 2);
  buf.fill(0x5b, head, head + half);
  buf.fill(0x5d, head + half);
  return buf;
}

async function attacker(port: number): Promise<void> {
  const send = (m: FromAttacker): void => {
    process.send?.(m);
  };
  process.on('disconnect', () => process.exit(0));
  setTimeout(() => process.exit(3), 30 * 60_000).unref();
  const ws = await RawWs.connect({ host: '127.0.0.1', port, path: `/ws?token=${API_KEY}` });
  let onText: ((text: string) => void) | null = null;
  let closed = false;
  ws.onMessage = (data) => onText?.(typeof data === 'string' ? data : data.toString('utf8'));
  ws.onClose = () => {
    closed = true;
    onText?.('(connection closed)');
  };
  const next = (timeoutMs: number): Promise<string> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        onText = null;
        resolve('(no answer)');
      }, timeoutMs);
      onText = (text) => {
        clearTimeout(t);
        onText = null;
        resolve(text);
      };
    });
  const registered = next(10_000);
  ws.send(JSON.stringify(deviceRegister('stall-attacker')), false);
  const reg = await registered;
  if (!reg.includes('"heartbeat"')) {
    send({ t: 'fatal', message: `attacker registration failed: ${reg.slice(0, 200)}` });
    return;
  }
  let frame: Buffer | null = null;
  process.on('message', (m: ToAttacker) => {
    if (m.t === 'prepare') {
      frame = null;
      const t0 = performance.now();
      frame = deepFrame(m.bytes, m.binary);
      send({ t: 'prepared', bytes: m.bytes, build_ms: performance.now() - t0 });
    } else if (m.t === 'fire' && frame) {
      const f = frame;
      frame = null;
      const t0 = performance.now();
      const answer = next(120_000);
      ws.sendFrames([f]);
      let written = -1;
      const poll = setInterval(() => {
        if (written < 0 && ws.writableLength === 0) written = performance.now() - t0;
      }, 1);
      void answer.then((text) => {
        clearInterval(poll);
        const answered = performance.now() - t0;
        if (written < 0) written = answered;
        let error = text;
        try {
          const m = JSON.parse(text) as { type?: unknown; error?: unknown };
          error = `${String(m.type)}: ${String(m.error)}`;
        } catch {
          // not JSON: keep the text
        }
        send({
          t: 'answered',
          written_ms: written,
          answered_ms: answered,
          answer: error.slice(0, 300),
          closed,
        });
      });
    }
  });
  send({ t: 'ready' });
}

// ---------------------------------------------------------------------------------------------------------------
// The orchestrator and the healthy client

/** Heartbeat round trips, back to back, on one registered device connection. */
class HealthyProbe {
  /** performance.now() of each send and receive, and the latency (ms), of completed round trips. */
  readonly sent: number[] = [];
  readonly recv: number[] = [];
  readonly lat: number[] = [];
  /** The close code when the server closed the healthy connection during the run. */
  closedWith: number | null = null;
  private outstandingSince = 0;
  private running = false;
  private readonly frame = buildFrame(
    JSON.stringify({ type: 'heartbeat', status: 'ok', client_type: 'device', client_id: 'stall-healthy' }),
    false,
  );

  private constructor(private readonly ws: RawWs) {}

  static async connect(port: number): Promise<HealthyProbe> {
    const ws = await RawWs.connect({ host: '127.0.0.1', port, path: `/ws?token=${API_KEY}` });
    const p = new HealthyProbe(ws);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('healthy client: no registration reply')), 10_000);
      ws.onMessage = (data) => {
        clearTimeout(t);
        const text = typeof data === 'string' ? data : data.toString('utf8');
        if (text.includes('"heartbeat"')) resolve();
        else reject(new Error(`healthy client registration failed: ${text.slice(0, 200)}`));
      };
      ws.send(JSON.stringify(deviceRegister('stall-healthy')), false);
    });
    ws.onMessage = () => p.onReply();
    ws.onClose = (code) => {
      if (p.running) p.closedWith = code;
    };
    return p;
  }

  start(): void {
    this.running = true;
    this.send();
  }

  stop(): void {
    this.running = false;
    this.ws.close(1000);
  }

  /** Time the open round trip has been waiting (0 when none). */
  openFor(now: number): number {
    return this.outstandingSince > 0 ? now - this.outstandingSince : 0;
  }

  clear(): void {
    this.sent.length = 0;
    this.recv.length = 0;
    this.lat.length = 0;
  }

  private send(): void {
    this.outstandingSince = performance.now();
    this.ws.sendFrames([this.frame]);
  }

  private onReply(): void {
    const now = performance.now();
    if (this.outstandingSince > 0) {
      this.sent.push(this.outstandingSince);
      this.recv.push(now);
      this.lat.push(now - this.outstandingSince);
    }
    this.outstandingSince = 0;
    if (this.running) this.send();
  }
}

const quantile = (sorted: readonly number[], q: number): number =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN;
const median = (xs: readonly number[]): number =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
const r2 = (v: number): number => Math.round(v * 100) / 100;

class Attacker {
  private readonly child: ChildProcess;
  private waiter: ((m: FromAttacker) => void) | null = null;
  private readonly early: FromAttacker[] = [];

  constructor(port: number) {
    this.child = track(
      fork(self, ['--attacker', String(port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
    this.child.on('message', (m: FromAttacker) => {
      if (this.waiter) this.waiter(m);
      else this.early.push(m);
    });
  }

  next(timeoutMs: number): Promise<FromAttacker> {
    const m = this.early.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`attacker: no message within ${timeoutMs} ms`));
      }, timeoutMs);
      const onExit = (code: number | null): void => {
        clearTimeout(t);
        this.waiter = null;
        reject(new Error(`attacker exited (code ${code})`));
      };
      this.child.once('exit', onExit);
      this.waiter = (msg) => {
        clearTimeout(t);
        this.child.off('exit', onExit);
        this.waiter = null;
        if (msg.t === 'fatal') reject(new Error(msg.message));
        else resolve(msg);
      };
    });
  }

  tell(m: ToAttacker): void {
    this.child.send(m);
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 1000);
  }
}

interface Run {
  baseline_n: number;
  baseline_p50_ms: number;
  baseline_p99_ms: number;
  baseline_max_ms: number;
  attack_n: number;
  attack_max_ms: number;
  stall_ms: number;
  /** The same measure over a window of the same length right after, with no attack: the noise floor. */
  quiet_stall_ms: number;
  /** When the slowest round trip of the attack window was sent, in ms after the order to send the frame. */
  worst_sent_after_ms: number | null;
  written_ms: number;
  answered_ms: number;
  answer: string;
  server_rss_mb: number;
}

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
  const attacker = new Attacker(server.port);
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

  const rows = cases.map(({ mib, binary, key }) => {
    const runs = results[key]!;
    const stall = median(runs.map((r) => r.stall_ms));
    return {
      size_mib: mib,
      frame: binary ? 'binary' : 'text',
      reps: runs.length,
      baseline_p50_ms: r2(median(runs.map((r) => r.baseline_p50_ms))),
      baseline_p99_ms: r2(median(runs.map((r) => r.baseline_p99_ms))),
      baseline_max_ms: r2(median(runs.map((r) => r.baseline_max_ms))),
      attack_max_ms: r2(median(runs.map((r) => r.attack_max_ms))),
      stall_ms: r2(stall),
      stall_ms_max: r2(Math.max(...runs.map((r) => r.stall_ms))),
      stall_ms_per_mib: r2(stall / mib),
      quiet_stall_ms: r2(median(runs.map((r) => r.quiet_stall_ms))),
      answered_ms: r2(median(runs.map((r) => r.answered_ms))),
      worst_sent_after_ms: r2(median(runs.map((r) => r.worst_sent_after_ms ?? NaN))),
      written_ms: r2(median(runs.map((r) => r.written_ms))),
      answer: runs[0]?.answer ?? '',
      server_rss_mb_after: runs[runs.length - 1]?.server_rss_mb ?? null,
    };
  });
  type Row = (typeof rows)[number];
  const cols: [string, (r: Row) => unknown][] = [
    ['frame MiB', (r) => r.size_mib],
    ['opcode', (r) => r.frame],
    ['reps', (r) => r.reps],
    ['baseline p50 ms', (r) => r.baseline_p50_ms],
    ['baseline p99 ms', (r) => r.baseline_p99_ms],
    ['baseline max ms', (r) => r.baseline_max_ms],
    ['max during attack ms', (r) => r.attack_max_ms],
    ['stall ms (median)', (r) => r.stall_ms],
    ['stall ms (max)', (r) => r.stall_ms_max],
    ['stall ms/MiB', (r) => r.stall_ms_per_mib],
    ['no-attack window ms', (r) => r.quiet_stall_ms],
    ['frame written at ms', (r) => r.written_ms],
    ['slowest RT sent at ms', (r) => r.worst_sent_after_ms],
    ['TOO_DEEP answer at ms', (r) => r.answered_ms],
    ['server RSS MB after', (r) => r.server_rss_mb_after],
  ];
  const lines = [
    `stall-deep-frame: a healthy client's heartbeat round trips while another connection sends one [[[…]]] frame`,
    `(medians of ${reps} reps; stall = max during attack − baseline p99; no-attack window = the same measure over an`,
    `equally long window right after, nothing sent: the noise floor; "at ms" = after the attacker was told to send)`,
    '',
    `| ${cols.map(([h]) => h).join(' | ')} |`,
    `|${cols.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${cols.map(([, f]) => String(f(r))).join(' | ')} |`),
    '',
    `aipd's answer: ${rows[0]?.answer ?? ''}`,
  ];
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
