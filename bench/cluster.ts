/**
 * `npm run bench:cluster` — AIP task round trips within one node against across two, in the same run.
 *
 * - Two `aipd serve --cluster` processes (A and B) on one redis-server (a private one on a free loopback port
 *   unless `--redis URL` names one; then under a fresh key prefix, deleted at the end) and a throwaway PostgreSQL
 *   database (created on the server at `--pg`, default $AIPD_TEST_PG_URL or postgres://postgres@127.0.0.1:5432/postgres,
 *   dropped at the end).
 * - One device on B answers every command at once. Two constellations target it: one on B (same node) and one
 *   on A (cross node: its task is handed to B over the bus, and the ACK and `task_end` come back over it).
 * - Tasks of `--steps` commands run one at a time, alternating A B A B, after `--warmup` tasks each. Per task:
 *   `task` sent → ACK (`ack`), `task` sent → `task_end` (`task`); per command, at the device: `command_results`
 *   sent → next `command` received (`step`: the session runs on B either way, so this should not differ).
 * - Output: p50/p99 in ms for each, the cross/same ratios, Redis used_memory at the end; a table on stdout and
 *   bench/results/cluster-latest.json. Loopback only; a watchdog ends the run after `--max-seconds`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { AipControllerClient, AipDeviceClient } from '../src/client/index.js';
import { gitCommit, killAll, sleep, startServer, stopChild, track, type StartedServer } from './lib/proc.js';

const KEY = 'bench-cluster-key';
import { aipdServeArgs } from './lib/scenarios.js';
const RESULTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '500' },
    steps: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '30' },
    redis: { type: 'string' },
    pg: {
      type: 'string',
      default: process.env.AIPD_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    },
    'max-seconds': { type: 'string', default: '110' },
  },
});
const TASKS = Number(values.tasks);
const STEPS = Number(values.steps);
const WARMUP = Number(values.warmup);

const watchdog = setTimeout(
  () => {
    process.stderr.write(`bench:cluster watchdog: giving up after ${values['max-seconds']} s\n`);
    killAll();
    process.exit(2);
  },
  Number(values['max-seconds']) * 1000,
);

type Side = 'same' | 'cross';
interface Samples {
  ack: number[];
  task: number[];
  step: number[];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summary(xs: number[]): { n: number; p50_ms: number; p99_ms: number } {
  const s = [...xs].sort((a, b) => a - b);
  const r = (v: number): number => Math.round(v * 1000) / 1000;
  return { n: s.length, p50_ms: r(percentile(s, 50)), p99_ms: r(percentile(s, 99)) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function ready(url: string): Promise<Redis> {
  for (let i = 0; ; i++) {
    const r = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 1 });
    r.on('error', () => undefined);
    try {
      await r.connect();
      await r.ping();
      return r;
    } catch (err) {
      r.disconnect();
      if (i > 200)
        throw new Error(`Redis at ${url} does not answer: ${(err as Error).message}`, { cause: err });
      await sleep(25);
    }
  }
}

async function pgAdmin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: values.pg, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

function plan(steps: number): string {
  const step = { actions: [{ tool_name: 'noop', tool_type: 'action', parameters: {} }] };
  return JSON.stringify({ task: 'bench', steps: Array.from({ length: steps }, () => step) });
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(os.tmpdir(), 'aipd-bench-cluster-'));
  const prefix = `aipd-bench:${randomBytes(6).toString('hex')}:`;
  const dbName = `aipd_bench_${randomBytes(6).toString('hex')}`;
  const clients: { close(): Promise<void> }[] = [];
  const nodes: StartedServer[] = [];
  let redisUrl = values.redis;
  let redisProc: ReturnType<typeof spawn> | null = null;
  let redis: Redis | null = null;
  let dbCreated = false;
  try {
    if (!redisUrl) {
      const port = await freePort();
      redisProc = track(
        spawn(
          'redis-server',
          ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
          {
            stdio: 'ignore',
          },
        ),
      );
      redisUrl = `redis://127.0.0.1:${port}`;
    }
    redis = await ready(redisUrl);
    await pgAdmin(`CREATE DATABASE ${dbName}`);
    dbCreated = true;
    const dbUrl = new URL(values.pg);
    dbUrl.pathname = `/${dbName}`;

    for (const id of ['bench-a', 'bench-b']) {
      const dataDir = join(tmp, id);
      mkdirSync(dataDir);
      nodes.push(
        await startServer(
          aipdServeArgs(KEY, [
            '--log-level',
            'warn',
            '--store',
            dbUrl.toString(),
            '--cluster',
            redisUrl,
            '--cluster-prefix',
            prefix,
            '--node-id',
            id,
            '--data-dir',
            dataDir,
            '--drain-timeout-ms',
            '500',
          ]),
          /listening on ws:\/\/[^:]+:(\d+)\//,
          30_000,
        ),
      );
    }
    const [a, b] = nodes as [StartedServer, StartedServer];
    const ws = (n: StartedServer): string => `ws://127.0.0.1:${n.port}/ws`;

    const samples: Record<Side, Samples> = {
      same: { ack: [], task: [], step: [] },
      cross: { ack: [], task: [], step: [] },
    };
    let measuring = false;
    /** Per session: when the device last sent results (the step clock). */
    const sentAt = new Map<string, number>();
    const device = new AipDeviceClient({
      url: ws(b),
      token: KEY,
      clientId: 'bench-dev',
      platform: 'linux',
      reconnect: false,
      onCommand: (cmd) => {
        const sid = cmd.session_id ?? '';
        const prev = sentAt.get(sid);
        if (measuring && prev !== undefined)
          samples[sid.startsWith('cross') ? 'cross' : 'same'].step.push(performance.now() - prev);
        // The results go out right after this returns: close enough for a clock of whole milliseconds.
        queueMicrotask(() => sentAt.set(sid, performance.now()));
        return (cmd.actions ?? []).map((act) => ({
          status: 'success' as const,
          result: 'ok',
          call_id: act.call_id,
        }));
      },
    });
    device.on('error', () => undefined);
    clients.push(device);
    await device.connect();
    for (let i = 0; ; i++) {
      const r = await fetch(`http://127.0.0.1:${a.port}/api/clients`, { headers: { 'x-api-key': KEY } });
      if (((await r.json()) as { online_clients: string[] }).online_clients.includes('bench-dev')) break;
      if (i > 400) throw new Error('node A never saw the device on node B');
      await sleep(25);
    }
    const controller = async (n: StartedServer, id: string): Promise<AipControllerClient> => {
      const c = new AipControllerClient({
        url: ws(n),
        token: KEY,
        clientId: id,
        targetId: 'bench-dev',
        reconnect: false,
      });
      c.on('error', () => undefined);
      clients.push(c);
      await c.connect();
      return c;
    };
    const ctl: Record<Side, AipControllerClient> = {
      cross: await controller(a, 'bench-ctl-a'),
      same: await controller(b, 'bench-ctl-b'),
    };

    const request = plan(STEPS);
    let seq = 0;
    const one = async (side: Side): Promise<void> => {
      const sid = `${side}-${seq++}`;
      const t0 = performance.now();
      const { sessionId } = await ctl[side].requestTask({ request, sessionId: sid, taskName: sid });
      const tAck = performance.now();
      const end = await ctl[side].waitTaskEnd(sessionId, 30_000);
      const tEnd = performance.now();
      sentAt.delete(sid);
      if (end.status !== 'completed') throw new Error(`${sid} ended ${end.status}: ${String(end.error)}`);
      if (!measuring) return;
      samples[side].ack.push(tAck - t0);
      samples[side].task.push(tEnd - t0);
    };
    const started = performance.now();
    for (let i = 0; i < WARMUP; i++) for (const side of ['cross', 'same'] as const) await one(side);
    measuring = true;
    for (let i = 0; i < TASKS; i++) {
      for (const side of ['cross', 'same'] as const) await one(side);
      if ((i + 1) % 100 === 0) process.stderr.write(`${i + 1}/${TASKS} task pairs\n`);
    }
    const measuredS = (performance.now() - started) / 1000;

    const info = await redis.info('memory');
    const usedMemory = Number(/used_memory:(\d+)/.exec(info)?.[1]);
    const same = {
      ack: summary(samples.same.ack),
      task: summary(samples.same.task),
      step: summary(samples.same.step),
    };
    const cross = {
      ack: summary(samples.cross.ack),
      task: summary(samples.cross.task),
      step: summary(samples.cross.step),
    };
    const ratio = (k: 'ack' | 'task' | 'step', p: 'p50_ms' | 'p99_ms'): number =>
      Math.round((cross[k][p] / same[k][p]) * 1000) / 1000;
    const commit = gitCommit() ?? '';
    const result = {
      meta: {
        date: new Date().toISOString(),
        node: process.version,
        cpus: os.cpus().length,
        commit,
        tasks_per_side: TASKS,
        steps_per_task: STEPS,
        warmup_per_side: WARMUP,
        order: 'cross, same, cross, same, … (one task at a time)',
        seconds: Math.round(measuredS * 10) / 10,
      },
      same_node: same,
      cross_node: cross,
      ratios: {
        'task:p50': ratio('task', 'p50_ms'),
        'task:p99': ratio('task', 'p99_ms'),
        'ack:p50': ratio('ack', 'p50_ms'),
        'ack:p99': ratio('ack', 'p99_ms'),
        'step:p50': ratio('step', 'p50_ms'),
        'step:p99': ratio('step', 'p99_ms'),
      },
      redis_used_memory_bytes: usedMemory,
    };
    const row = (name: string, k: 'ack' | 'task' | 'step'): string =>
      `| ${name} | ${same[k].p50_ms} | ${same[k].p99_ms} | ${cross[k].p50_ms} | ${cross[k].p99_ms} | ` +
      `${result.ratios[`${k}:p50`]} | ${result.ratios[`${k}:p99`]} |`;
    process.stdout.write(
      `# aipd bench:cluster, ${result.meta.date} (node ${process.version}, ${result.meta.cpus} CPUs)\n\n` +
        `${TASKS} tasks of ${STEPS} commands per side, interleaved; device on node B; same = requester on B, ` +
        `cross = requester on A.\n\n` +
        '| round trip (ms) | same p50 | same p99 | cross p50 | cross p99 | cross/same p50 | cross/same p99 |\n' +
        '| --- | --- | --- | --- | --- | --- | --- |\n' +
        `${row(`task → task_end (${STEPS} commands)`, 'task')}\n${row('task → ACK', 'ack')}\n` +
        `${row('command_results → next command', 'step')}\n\n` +
        `Redis used_memory at the end: ${usedMemory} B\n`,
    );
    mkdirSync(RESULTS, { recursive: true });
    writeFileSync(join(RESULTS, 'cluster-latest.json'), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    for (const n of nodes) await stopChild(n.child, 3_000);
    if (redis) {
      if (values.redis) {
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length > 0) await redis.del(...keys);
      }
      redis.disconnect();
    }
    if (redisProc) await stopChild(redisProc, 1_000);
    if (dbCreated) await pgAdmin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => clearTimeout(watchdog),
  (err: unknown) => {
    process.stderr.write(`bench:cluster failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    killAll();
    process.exit(1);
  },
);
