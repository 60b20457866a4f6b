/**
 * The whole server's round trip, in process: aipd started on the in-memory transport (no sockets, no load
 * generator process), on its default store (SQLite in a temporary folder) or the memory store, with `DEVICES`
 * devices that each run a plan task of `STEPS` steps and answer every `command` at once with one success per action,
 * as the bench devices do. Everything aipd does per round trip runs here (decode, guards, validation, dispatch,
 * session and plan agent, the step's rows and their group commit, events, metrics, encode) except the uWS socket
 * and the kernel: so it is the part of `aip-json`'s server CPU that aipd's own code decides, measured without
 * the noise of a second process sharing two cores.
 *
 * It reports, per round trip:
 * - `µs`: the process's CPU time (user + system) over `ROUNDS` round trips, median of `REPS` windows, less the
 *   devices' own work (parse the `command`, build and send the `command_results`: `device µs`, timed alone);
 * - `bytes`: the JavaScript heap allocated, from `heapUsed` around a window with no garbage collection in it
 *   (the young generation is made large enough for that: the script runs itself again with
 *   `--max-semi-space-size` / `--min-semi-space-size` and `--expose-gc`); every object made counts, kept or not.
 *
 * Run: `npm run build && node dist/bench/micro/server-round.js [sqlite|memory]`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { encodeServerMessage, jsonCodec } from '../../protocol/index.js';
import { startServer, type RunningServer } from '../../src/app/server.js';
import { silentLogger } from '../../src/logger.js';
import type { MemoryClientSocket } from '../../src/transport/memory.js';
import { commandMsg } from './frames.js';
import { median } from './harness.js';
import { deviceRegister } from '../lib/register.js';

const DEVICES = 64;
/** Steps per task, as the bench's (each device asks for its next task when one ends). */
const STEPS = 1000;
const ROUNDS = 20_000;
const REPS = 5;
/** Round trips in the allocation window: small enough that they fit in the young generation with no GC. */
const ALLOC_ROUNDS = 4_000;
const SEMI_MB = 512;
const KEY = 'micro-key-0123456789abcdef';

const planText = JSON.stringify({
  task: 'bench',
  steps: Array.from({ length: STEPS }, (_, i) => ({
    actions: [{ tool_name: 'noop', tool_type: 'action', parameters: { i } }],
  })),
});

interface Msg {
  type?: string;
  status?: string;
  session_id?: string;
  response_id?: string;
  actions?: { call_id?: string }[];
}

/** A typical `command` as aipd sends it (the micro benchmarks' own). */
function commandSample(): string {
  return encodeServerMessage(jsonCodec, commandMsg) as string;
}

/** What a bench device does with a `command`: parse it, answer with one success per action. */
function answer(text: string, id: string): string {
  const m = JSON.parse(text) as Msg;
  return JSON.stringify({
    type: 'command_results',
    status: 'continue',
    session_id: m.session_id,
    client_id: id,
    prev_response_id: m.response_id,
    action_results: (m.actions ?? []).map((a) => ({
      status: 'success',
      result: 'ok',
      call_id: a.call_id ?? null,
    })),
  });
}

class Devices {
  rounds = 0;
  /** Set before the server closes (it ends the tasks then). */
  stopping = false;
  private target = 0;
  private done: (() => void) | null = null;
  private readonly paused: (() => void)[] = [];

  constructor(private readonly server: RunningServer) {}

  async start(): Promise<void> {
    const ready: Promise<void>[] = [];
    for (let i = 0; i < DEVICES; i++) ready.push(this.device(`micro-dev-${i}`));
    await Promise.all(ready);
  }

  /** Runs `n` more round trips (every device keeps answering until then; the rest wait). */
  run(n: number): Promise<void> {
    this.target = this.rounds + n;
    return new Promise((resolve) => {
      this.done = resolve;
      for (const go of this.paused.splice(0)) go();
    });
  }

  private device(id: string): Promise<void> {
    const r = this.server.memory!.connect(`token=${KEY}`);
    if ('refused' in r) throw new Error(`refused: ${String(r.refused.body)}`);
    const ws: MemoryClientSocket = r;
    const task = JSON.stringify({
      type: 'task',
      status: 'continue',
      client_id: id,
      request: planText,
      task_name: 'bench',
    });
    let started = false;
    return new Promise((registered) => {
      ws.onFrame((f) => {
        const text = f.data as string;
        if (text.includes('"type":"command"')) {
          const reply = answer(text, id);
          this.rounds++;
          if (this.rounds >= this.target) {
            this.paused.push(() => ws.send(reply));
            if (this.paused.length === DEVICES) {
              const d = this.done;
              this.done = null;
              d?.();
            }
          } else ws.send(reply);
        } else if (text.includes('"type":"heartbeat"')) {
          if (started) return;
          started = true;
          ws.send(task);
          registered();
        } else if (text.includes('"type":"task_end"') && text.includes('"status":"completed"')) ws.send(task);
        else if (!this.stopping && (text.includes('"type":"task_end"') || text.includes('"type":"error"')))
          throw new Error(`${id}: ${text.slice(0, 300)}`);
      });
      ws.send(JSON.stringify(deviceRegister(id)));
    });
  }
}

const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

/** The devices' own CPU per round trip: `answer` on a typical `command`, alone. */
function deviceUs(sample: string): number {
  let sink = 0;
  for (let i = 0; i < 20_000; i++) sink += answer(sample, 'micro-dev-0').length;
  const t0 = cpuUs();
  for (let i = 0; i < 100_000; i++) sink += answer(sample, 'micro-dev-0').length;
  if (sink < 0) console.log(sink);
  return (cpuUs() - t0) / 100_000;
}

async function withServer<T>(store: string, fn: (d: Devices) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'aipd-micro-round-'));
  const server = await startServer(
    { port: 0, host: '127.0.0.1', apiKey: KEY, logLevel: 'silent', store, dataDir: dir },
    { logger: silentLogger(), transport: 'memory' },
  );
  try {
    const d = new Devices(server);
    try {
      await d.start();
      await d.run(ROUNDS); // warm-up
      return await fn(d);
    } finally {
      d.stopping = true;
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The allocation window, in the child started with a large young generation. */
async function allocChild(store: string): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc!;
  let gcs = 0;
  const obs = new PerformanceObserver((list) => (gcs += list.getEntries().length));
  obs.observe({ entryTypes: ['gc'] });
  const out = await withServer(store, async (d) => {
    const perRound: number[] = [];
    for (let r = 0; r < REPS; r++) {
      gc();
      await new Promise((res) => setTimeout(res, 20));
      const seen = gcs;
      const h0 = process.memoryUsage().heapUsed;
      await d.run(ALLOC_ROUNDS);
      const h1 = process.memoryUsage().heapUsed;
      await new Promise((res) => setImmediate(res));
      if (gcs === seen) perRound.push((h1 - h0) / ALLOC_ROUNDS);
    }
    return perRound;
  });
  obs.disconnect();
  // The devices' own allocation per round trip, alone.
  const sample = commandSample();
  gc();
  const h0 = process.memoryUsage().heapUsed;
  for (let i = 0; i < ALLOC_ROUNDS; i++) answer(sample, 'micro-dev-0');
  const device = (process.memoryUsage().heapUsed - h0) / ALLOC_ROUNDS;
  process.stdout.write(JSON.stringify({ perRound: out, device }));
}

async function main(): Promise<void> {
  const store = process.argv[2] ?? 'sqlite';
  if (process.argv[3] === '--alloc-child') return allocChild(store);
  const sample = commandSample();
  const device = deviceUs(sample);
  const total = await withServer(store, async (d) => {
    const xs: number[] = [];
    for (let r = 0; r < REPS; r++) {
      const t0 = cpuUs();
      await d.run(ROUNDS);
      xs.push((cpuUs() - t0) / ROUNDS);
    }
    return xs;
  });
  const child = spawnSync(
    process.execPath,
    [
      `--max-semi-space-size=${SEMI_MB}`,
      `--min-semi-space-size=${SEMI_MB}`,
      '--expose-gc',
      fileURLToPath(import.meta.url),
      store,
      '--alloc-child',
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const alloc = JSON.parse(child.stdout || '{"perRound":[],"device":0}') as {
    perRound: number[];
    device: number;
  };
  const bytes = alloc.perRound;
  console.log(
    `# server round trip in process (${store} store, ${DEVICES} devices, node ${process.version})\n`,
  );
  console.log('| per round trip | median | min–max | windows |');
  console.log('|---|---:|---:|---:|');
  const row = (name: string, xs: number[], f: (x: number) => string): void =>
    console.log(
      `| ${name} | ${f(median(xs))} | ${f(Math.min(...xs))}–${f(Math.max(...xs))} | ${xs.length} |`,
    );
  row('CPU µs, devices included', total, (x) => x.toFixed(2));
  console.log(
    `| device µs (parse command, build and send results), timed alone | ${device.toFixed(2)} | | |`,
  );
  row(
    'aipd CPU µs (the first row less the devices)',
    total.map((x) => x - device),
    (x) => x.toFixed(2),
  );
  if (bytes.length > 0) {
    row('heap bytes allocated, devices included', bytes, (x) => String(Math.round(x)));
    console.log(`| device heap bytes, alone | ${Math.round(alloc.device)} | | |`);
    row(
      'aipd heap bytes allocated',
      bytes.map((x) => x - alloc.device),
      (x) => String(Math.round(x)),
    );
  } else console.log('| heap bytes allocated | (every window had a GC in it) | | |');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
