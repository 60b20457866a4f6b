/**
 * `aipd batch` end to end: a real aipd (in-process, port 0), a real device client recording the commands it
 * runs, and the CLI as a child process (`node --import tsx src/cli/main.ts batch ...`). Across a crash: `aipd serve`
 * as a process on SQLite, killed with SIGKILL mid-batch and restarted on the same port and data dir.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ResultInput } from '../../protocol/index.js';
import { batchClientId, parseBatchArgs } from '../../src/cli/batch.js';
import { AipDeviceClient, type ReconnectOptions } from '../../src/client/index.js';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { serveProcess, type ServedProcess } from '../helpers/cli-process.js';
import { until } from '../helpers/process.js';
import { MockAipServer } from '../client/mock-server.js';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const DEVICE = 'dev-1';
/** A duration as the CLI prints it: `12 ms` or `1.2 s`. */
const T = String.raw`\d+(?:\.\d)? m?s`;

const procs: ChildProcessWithoutNullStreams[] = [];
const cleanups: (() => Promise<void>)[] = [];
let root: string;

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** Runs `aipd batch ...` to completion (killed after 25 s), without any AIPD_* variables from this environment. */
function batch(args: string[], env: Record<string, string> = {}, killAfterMs = 25_000): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AIPD_')));
  const p = spawn(process.execPath, ['--import', 'tsx', MAIN, 'batch', ...args], {
    env: { ...base, ...env },
  });
  procs.push(p);
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => p.kill('SIGKILL'), killAfterMs);
  return new Promise((resolve) =>
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    }),
  );
}

/** `--target TARGET --mode batch_normal --plan PLANS --url URL --token TEST_KEY` */
const batchNormal = (plans: string, url: string, target = DEVICE): string[] => [
  '--target',
  target,
  '--mode',
  'batch_normal',
  '--plan',
  plans,
  '--url',
  url,
  '--token',
  TEST_KEY,
];
const echo = (marker: string) => ({ tool_name: 'echo', tool_type: 'action', parameters: { marker } });
const planText = (...steps: object[][]) =>
  JSON.stringify({ task: 'batch test', object: '', steps: steps.map((actions) => ({ actions })) });

/**
 * A connected device `dev-1` that records every action it runs as `tool:marker`, each taking `delayMs`: `boom`
 * fails, `vanish` disconnects the device.
 */
async function recordingDevice(
  url: string,
  reconnect: ReconnectOptions | false,
  delayMs = 0,
): Promise<{ device: AipDeviceClient; actions: string[] }> {
  const actions: string[] = [];
  const device: AipDeviceClient = new AipDeviceClient({
    url,
    token: TEST_KEY,
    clientId: DEVICE,
    platform: 'linux',
    reconnect,
    onCommand: async (cmd) => {
      const results: ResultInput[] = [];
      for (const a of cmd.actions ?? []) {
        const marker = typeof a.parameters?.marker === 'string' ? a.parameters.marker : '';
        actions.push(`${a.tool_name}:${marker}`);
        if (a.tool_name === 'vanish') {
          void device.close();
          return new Promise<ResultInput[]>(() => undefined);
        }
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
        results.push(
          a.tool_name === 'boom'
            ? { status: 'failure', error: 'boom went the tool' }
            : { status: 'success', result: { marker } },
        );
      }
      return results;
    },
  });
  device.on('error', () => undefined);
  cleanups.push(() => device.close());
  await device.connect();
  return { device, actions };
}

/** A real server and a `recordingDevice` on it. */
async function startServerAndDevice(): Promise<{ port: number; actions: string[] }> {
  const server = await startTestServer();
  cleanups.push(() => server.close());
  const { actions } = await recordingDevice(`ws://127.0.0.1:${server.port}/ws`, false);
  return { port: server.port, actions };
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'aipd-batch-'));
});

afterEach(async () => {
  for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  await rm(root, { recursive: true, force: true });
});

describe('aipd batch against a real server and device', () => {
  it('runs a folder of plans, records them in tasks_status.json, and skips them all on a re-run', async () => {
    const { port, actions } = await startServerAndDevice();
    const plans = join(root, 'plans');
    await mkdir(plans);
    await writeFile(join(plans, 'plan-a.json'), planText([echo('a1')], [echo('a2')]));
    await writeFile(join(plans, 'plan-b.json'), planText([echo('b1'), echo('b2')]));
    await writeFile(join(plans, 'plan-c.json'), planText([echo('c1')]));
    await writeFile(join(plans, 'README.txt'), 'not a plan, and not *.json');
    const args = [
      '--target',
      DEVICE,
      '--mode',
      'batch_normal',
      '--plan',
      plans,
      '--url',
      `ws://127.0.0.1:${port}/ws`,
      '--token',
      TEST_KEY,
    ];

    const first = await batch([...args, '--concurrency', '2']);
    expect(first.err).not.toMatch(/aipd:/);
    expect(first.code).toBe(0);
    for (const [i, f] of ['plan-a.json', 'plan-b.json', 'plan-c.json'].entries()) {
      expect(first.err).toMatch(new RegExp(`^\\[${i + 1}/3\\] ${f} started \\(session \\S+\\)$`, 'm'));
      expect(first.err).toMatch(new RegExp(`^\\[${i + 1}/3\\] ${f} completed \\(${T}\\)$`, 'm'));
    }
    expect(first.out).toMatch(new RegExp(String.raw`^plan-a\.json\s+completed\s+${T}$`, 'm'));
    expect(first.out).toMatch(
      new RegExp(`^batch batch_normal on dev-1: 3 plans, 3 completed, 0 failed, 0 skipped in ${T}$`, 'm'),
    );
    const statusFile = join(root, 'tasks_status.json');
    expect(first.out).toContain(`status file: ${statusFile}\n`);
    expect(actions.sort()).toEqual(['echo:a1', 'echo:a2', 'echo:b1', 'echo:b2', 'echo:c1']);
    expect(JSON.parse(await readFile(statusFile, 'utf8'))).toEqual({
      'plans/plan-a': true,
      'plans/plan-b': true,
      'plans/plan-c': true,
    });

    // Re-run with the token in the URL instead: everything is skipped, the device sees nothing.
    const second = await batch([
      '--target',
      DEVICE,
      '--mode',
      'batch_normal',
      '--plan',
      plans,
      '--url',
      `ws://127.0.0.1:${port}/ws?token=${TEST_KEY}`,
    ]);
    expect(second.code).toBe(0);
    expect(second.err).toMatch(
      /^\[1\/3\] plan-a\.json skipped \(already completed in .*tasks_status\.json\)$/m,
    );
    expect(second.err).not.toMatch(/started|completed \(/);
    expect(second.out).toMatch(/^plan-c\.json\s+skipped\s+-\s+done in tasks_status\.json$/m);
    expect(second.out).toMatch(/: 3 plans, 0 completed, 0 failed, 3 skipped in /);
    expect(actions).toHaveLength(5);
  });

  it('exits 1 when a plan step fails (follower: every plan runs, no status file); a single file works too', async () => {
    const { port, actions } = await startServerAndDevice();
    const plans = join(root, 'plans');
    await mkdir(plans);
    await writeFile(join(plans, '1-ok.json'), planText([echo('ok')]));
    await writeFile(
      join(plans, '2-bad.json'),
      planText([echo('before')], [{ tool_name: 'boom', tool_type: 'action' }], [echo('never')]),
    );
    await writeFile(join(plans, '3-after.json'), planText([echo('after')]));
    const common = ['--target', DEVICE, '--mode', 'follower', '--url', `ws://127.0.0.1:${port}/ws`];

    const r = await batch([...common, '--plan', plans], { AIPD_TOKEN: TEST_KEY });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      new RegExp(
        String.raw`^\[2/3\] 2-bad\.json failed \(${T}\): Plan step 1 failed: tool 'boom': boom went the tool$`,
        'm',
      ),
    );
    expect(r.err).toMatch(/^\[3\/3\] 3-after\.json completed/m);
    expect(r.out).toMatch(new RegExp(String.raw`^2-bad\.json\s+failed\s+${T}\s+Plan step 1 failed`, 'm'));
    expect(r.out).toMatch(/: 3 plans, 2 completed, 1 failed, 0 skipped in /);
    expect(r.out).not.toContain('status file');
    expect(actions).toEqual(['echo:ok', 'echo:before', 'boom:', 'echo:after']);
    expect(await readdir(root)).toEqual(['plans']);

    const single = await batch([...common, '--plan', join(plans, '1-ok.json')], { AIPD_API_KEY: TEST_KEY });
    expect(single.code).toBe(0);
    expect(single.err).toMatch(/^\[1\/1\] 1-ok\.json completed/m);
    expect(single.out).toMatch(/: 1 plan, 1 completed, 0 failed, 0 skipped in /);
  });

  it('batch_normal keeps a failed plan false in the status file and retries only it', async () => {
    const { port, actions } = await startServerAndDevice();
    const plans = join(root, 'plans');
    await mkdir(plans);
    await writeFile(join(plans, 'a.json'), planText([echo('a')]));
    await writeFile(join(plans, 'b.json'), planText([{ tool_name: 'boom', tool_type: 'action' }]));
    const statusFile = join(root, 'custom', 'status.json');
    await mkdir(join(root, 'custom'));
    const args = [
      '--target',
      DEVICE,
      '--mode',
      'batch_normal',
      '--plan',
      plans,
      '--status-file',
      statusFile,
      '--url',
      `ws://127.0.0.1:${port}/ws`,
      '--token',
      TEST_KEY,
    ];
    const r1 = await batch(args);
    expect(r1.code).toBe(1);
    expect(JSON.parse(await readFile(statusFile, 'utf8'))).toEqual({
      '../plans/a': true,
      '../plans/b': false,
    });
    await writeFile(join(plans, 'b.json'), planText([echo('b fixed')]));
    const r2 = await batch(args);
    expect(r2.code).toBe(0);
    expect(r2.out).toMatch(/: 2 plans, 1 completed, 0 failed, 1 skipped in /);
    expect(r2.out).toMatch(/^a\.json\s+skipped\s+-\s+done in status\.json$/m);
    expect(actions).toEqual(['echo:a', 'boom:', 'echo:b fixed']);
    expect(JSON.parse(await readFile(statusFile, 'utf8'))).toEqual({
      '../plans/a': true,
      '../plans/b': true,
    });
  });

  it('batch_normal keys tasks_status.json by folder: a plan of the same name in a sibling folder still runs', async () => {
    const { port, actions } = await startServerAndDevice();
    const url = `ws://127.0.0.1:${port}/ws`;
    const plans = join(root, 'plans');
    for (const folder of ['A', 'B', 'U']) {
      await mkdir(join(plans, folder), { recursive: true });
      await writeFile(join(plans, folder, 'deploy.json'), planText([echo(`${folder} deploy`)]));
    }
    await writeFile(join(plans, 'B', 'other.json'), planText([echo('B other')]));
    await writeFile(join(plans, 'U', 'notes.json'), planText([echo('U notes')]));
    const statusFile = join(plans, 'tasks_status.json');
    const status = async () => JSON.parse(await readFile(statusFile, 'utf8')) as Record<string, boolean>;

    // A's deploy.json, as a single file.
    const a = await batch(batchNormal(join(plans, 'A', 'deploy.json'), url));
    expect(a.code).toBe(0);
    expect(await status()).toEqual({ 'A/deploy': true });
    // B's deploy.json is another plan: it runs, it is not "skipped … done".
    const b = await batch(batchNormal(join(plans, 'B', 'deploy.json'), url));
    expect(b.code).toBe(0);
    expect(b.err).toMatch(/^\[1\/1\] deploy\.json completed/m);
    expect(b.out).toMatch(/: 1 plan, 1 completed, 0 failed, 0 skipped in /);
    expect(actions).toEqual(['echo:A deploy', 'echo:B deploy']);
    // Folder B: its deploy (done above, as a file) is skipped, its other plan runs.
    const folderB = await batch(batchNormal(join(plans, 'B'), url));
    expect(folderB.code).toBe(0);
    expect(folderB.err).toMatch(/^\[1\/2\] deploy\.json skipped/m);
    expect(actions.at(-1)).toBe('echo:B other');
    expect(await status()).toEqual({ 'A/deploy': true, 'B/deploy': true, 'B/other': true });

    // A UFO status file (bare stems) written for folder U, whose plan files it matches best: U's done plan is
    // skipped, the other runs, and its entries become U's.
    await writeFile(statusFile, JSON.stringify({ ...(await status()), deploy: true, notes: false }));
    const u = await batch(batchNormal(join(plans, 'U'), url));
    expect(u.code).toBe(0);
    expect(u.out).toMatch(/: 2 plans, 1 completed, 0 failed, 1 skipped in /);
    expect(await status()).toEqual({
      'A/deploy': true,
      'B/deploy': true,
      'B/other': true,
      'U/deploy': true,
      'U/notes': true,
    });
    expect(actions.slice(3)).toEqual(['echo:U notes']);
  });

  it('reports a device that is not connected up front (exit 2) and one that goes offline mid-batch (exit 1)', async () => {
    const { port, actions } = await startServerAndDevice();
    const plans = join(root, 'plans');
    await mkdir(plans);
    await writeFile(join(plans, 'a.json'), planText([echo('a')]));
    await writeFile(join(plans, 'b.json'), planText([{ tool_name: 'vanish', tool_type: 'action' }]));
    await writeFile(join(plans, 'c.json'), planText([echo('c')]));
    const url = `ws://127.0.0.1:${port}/ws`;

    const ghost = await batch(batchNormal(plans, url, 'ghost'));
    expect(ghost.code).toBe(2);
    expect(ghost.err).toBe(
      `aipd: device 'ghost' is not connected to ${url} (server: Target device 'ghost' is not connected)\n`,
    );
    expect(ghost.out).toBe('');

    const r = await batch(batchNormal(plans, url));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^\[1\/3\] a\.json completed/m);
    expect(r.err).toMatch(
      new RegExp(
        String.raw`^\[2/3\] b\.json failed \(${T}\): Task was cancelled because target device disconnected$`,
        'm',
      ),
    );
    expect(r.err).toMatch(/^\[3\/3\] c\.json not run: device 'dev-1' went offline$/m);
    expect(r.err).toMatch(/^aipd: device 'dev-1' went offline; 1 plan was not run$/m);
    expect(r.out).toMatch(/: 3 plans, 1 completed, 1 failed, 0 skipped, 1 not run in /);
    expect(actions).toEqual(['echo:a', 'vanish:']);
    expect(JSON.parse(await readFile(join(root, 'tasks_status.json'), 'utf8'))).toEqual({
      'plans/a': true,
      'plans/b': false,
      'plans/c': false,
    });
  });
});

describe('aipd batch across a SIGKILL and restart of aipd serve', () => {
  it('reconnects as the same client, gets the resumed task_end, records it in tasks_status.json and runs on (exit 0)', async () => {
    const dataDir = join(root, 'data');
    await mkdir(dataDir);
    const serveOn = (port: number): Promise<ServedProcess> =>
      serveProcess(port, TEST_KEY, { env: { AIPD_STORE: 'sqlite', AIPD_DATA_DIR: dataDir }, track: procs });
    const first = await serveOn(0);
    const url = `ws://127.0.0.1:${first.port}/ws`;
    const { actions } = await recordingDevice(url, { initialDelayMs: 100, maxDelayMs: 500 }, 150);

    const plans = join(root, 'plans');
    await mkdir(plans);
    const long = Array.from({ length: 10 }, (_, i) => [echo(`a${i}`)]);
    await writeFile(join(plans, 'a.json'), planText(...long));
    await writeFile(join(plans, 'b.json'), planText([echo('b0')]));
    const args = batchNormal(plans, url);
    const run = batch(args, {}, 80_000);
    await until(() => actions.length >= 3, 'three steps of a.json', 30_000);
    first.proc.kill('SIGKILL');
    await first.exit;
    await serveOn(first.port);

    const r = await run;
    expect(r.err).toMatch(
      new RegExp(
        String.raw`^aipd: lost the connection to ws://127\.0\.0\.1:${first.port}/ws \(code 1006\); reconnecting as batch-[0-9a-f]{8}@dev-1, waiting up to 600\.0 s for the tasks in flight$`,
        'm',
      ),
    );
    expect(r.err).toMatch(/^aipd: registered again with /m);
    expect(r.err).toMatch(new RegExp(`^\\[1/2\\] a\\.json completed \\(${T}\\)$`, 'm'));
    expect(r.err).toMatch(new RegExp(`^\\[2/2\\] b\\.json completed \\(${T}\\)$`, 'm'));
    expect(r.out).toMatch(/: 2 plans, 2 completed, 0 failed, 0 skipped in /);
    expect(r.code).toBe(0);
    expect(JSON.parse(await readFile(join(root, 'tasks_status.json'), 'utf8'))).toEqual({
      'plans/a': true,
      'plans/b': true,
    });
    // Every step of a ran (at most the one in flight at the kill twice), then b.
    expect(new Set(actions)).toEqual(new Set([...long.map((_, i) => `echo:a${i}`), 'echo:b0']));
    expect(actions.length).toBeLessThanOrEqual(12);
    expect(actions.at(-1)).toBe('echo:b0');
    // A re-run has nothing left to do.
    const again = await batch(args);
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/: 2 plans, 0 completed, 0 failed, 2 skipped in /);
  }, 120_000);
});

describe('aipd batch errors (exit 2, one line)', () => {
  it('a missing plan folder', async () => {
    const missing = join(root, 'nope');
    const r = await batch(['--target', DEVICE, '--mode', 'follower', '--plan', missing, '--token', 'k']);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`aipd: --plan: no such file or folder: ${missing}\n`);
  });

  it('a file that is not a plan, alone or in a folder, is named', async () => {
    const notes = join(root, 'notes.json');
    await writeFile(notes, JSON.stringify({ hello: 'world' }));
    const r = await batch(['--target', DEVICE, '--mode', 'batch_normal', '--plan', notes, '--token', 'k']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      new RegExp(`^aipd: not a plan: ${notes.replace(/[.\\/]/g, '\\$&')} \\(Invalid plan: steps: .*\\)\\n$`),
    );

    const plans = join(root, 'plans');
    await mkdir(plans);
    await writeFile(join(plans, 'good.json'), planText([echo('x')]));
    await writeFile(join(plans, 'broken.json'), '{ "steps": [');
    const r2 = await batch(['--target', DEVICE, '--mode', 'follower', '--plan', plans, '--token', 'k']);
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(
      /^aipd: not a plan: .*\/plans\/broken\.json \(Invalid plan: not valid JSON \(.*\)\)\n$/,
    );
    expect(await readdir(root)).toEqual(['notes.json', 'plans']); // nothing was written
  });

  it('an empty folder, a missing flag and a bad mode', async () => {
    await mkdir(join(root, 'empty'));
    const [empty, noTarget, badMode] = await Promise.all([
      batch(['--target', DEVICE, '--mode', 'follower', '--plan', join(root, 'empty'), '--token', 'k']),
      batch(['--mode', 'follower', '--plan', root, '--token', 'k']),
      batch(['--target', DEVICE, '--mode', 'turbo', '--plan', root, '--token', 'k']),
    ]);
    expect([empty.code, noTarget.code, badMode.code]).toEqual([2, 2, 2]);
    expect(empty.err).toBe(`aipd: --plan: no plan files (*.json) in ${join(root, 'empty')}\n`);
    expect(noTarget.err).toBe("aipd: --target: required (the device's client_id)\n");
    expect(badMode.err).toBe('aipd: --mode: expected follower or batch_normal, got "turbo"\n');
  });

  it('an unreachable server', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const { port: p } = s.address() as { port: number };
        s.close(() => resolve(p));
      });
    });
    await writeFile(join(root, 'p.json'), planText([echo('x')]));
    const r = await batch([
      '--target',
      DEVICE,
      '--mode',
      'follower',
      '--plan',
      join(root, 'p.json'),
      '--url',
      `ws://127.0.0.1:${port}/ws`,
      '--token',
      'k',
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `aipd: cannot reach the server at ws://127.0.0.1:${port}/ws: connect ECONNREFUSED 127.0.0.1:${port}\n`,
    );
  });
});

/** A mock server (token `secret`) that ACKs every task and ends it completed at once. */
async function completingServer(): Promise<MockAipServer> {
  const srv = await MockAipServer.start({ token: 'secret' });
  cleanups.push(() => srv.close());
  srv.onMessage = (conn, m) => {
    if (m.type !== 'task') return;
    conn.send({ type: 'heartbeat', status: 'ok', session_id: m.session_id });
    conn.send({ type: 'task_end', status: 'completed', session_id: m.session_id, result: { ok: true } });
  };
  return srv;
}

describe('aipd batch wire format and flags', () => {
  it('sends each plan as a constellation task for the device with metadata.mode and the plan text', async () => {
    const srv = await completingServer();
    const plans = join(root, 'my plans');
    await mkdir(plans);
    const text = planText([echo('x')]);
    await writeFile(join(plans, 'only one.json'), text);
    const r = await batch([
      '--target',
      DEVICE,
      '--mode',
      'follower',
      '--plan',
      plans,
      '--url',
      srv.url,
      '--token',
      'secret',
      '--client-id',
      'ctl@dev-1',
    ]);
    expect(r.code).toBe(0);
    expect(srv.registrations[0]).toMatchObject({
      type: 'register',
      client_type: 'constellation',
      client_id: 'ctl@dev-1',
      target_id: DEVICE,
    });
    const { msg } = await srv.next((m) => m.type === 'task');
    expect(msg).toMatchObject({
      client_type: 'constellation',
      client_id: 'ctl@dev-1',
      target_id: DEVICE,
      request: text,
      task_name: 'my_plans_only_one',
      metadata: { mode: 'follower' },
    });
  });

  it('registers as the same client id on every run of the same plans (derived from the status file), unless --client-id', async () => {
    const srv = await completingServer();
    const plans = join(root, 'plans');
    await mkdir(join(plans, 'A'), { recursive: true });
    await writeFile(join(plans, 'A', 'x.json'), planText([echo('x')]));
    const args = ['--target', DEVICE, '--url', srv.url, '--token', 'secret'];
    const runs = [
      ['--mode', 'follower', '--plan', join(plans, 'A')],
      ['--mode', 'follower', '--plan', join(plans, 'A')],
      ['--mode', 'batch_normal', '--plan', join(plans, 'A')],
      ['--mode', 'batch_normal', '--plan', join(plans, 'A', 'x.json')],
      ['--mode', 'follower', '--plan', join(plans, 'A'), '--status-file', join(plans, 'tasks_status.json')],
    ];
    for (const extra of runs) expect((await batch([...args, ...extra])).code).toBe(0);
    const ids = srv.registrations.map((m) => m.client_id);
    expect(ids[0]).toMatch(/^batch-[0-9a-f]{8}@dev-1$/);
    expect(ids[0]).toBe(ids[1]);
    expect(ids[0]).toBe(batchClientId(DEVICE, join(plans, 'A')));
    // batch_normal: the status file (plans/tasks_status.json) names the run, whether a folder or a file of it.
    expect(ids[2]).toBe(batchClientId(DEVICE, join(plans, 'tasks_status.json')));
    expect(ids[3]).toBe(ids[2]);
    expect(ids[4]).toBe(ids[2]);
    expect(ids[2]).not.toBe(ids[0]);
    expect(batchClientId('other', join(plans, 'A'))).toMatch(/@other$/);
  });

  it('parses flags and the environment', () => {
    const ok = parseBatchArgs(
      ['--target', 'd', '--mode', 'batch_normal', '--plan', 'p', '--concurrency', '4'],
      { AIPD_URL: 'ws://h:1/ws?token=t' },
    );
    expect(ok).toMatchObject({
      ok: true,
      options: { url: 'ws://h:1/ws', token: 't', target: 'd', mode: 'batch_normal', concurrency: 4 },
    });
    const env = parseBatchArgs(['--target', 'd', '--mode', 'follower', '--plan', 'p'], {
      AIPD_TOKEN: 'a',
      AIPD_API_KEY: 'b',
    });
    expect(env).toMatchObject({
      ok: true,
      options: { url: 'ws://127.0.0.1:5000/ws', token: 'a', concurrency: 1 },
    });
    expect(
      parseBatchArgs(['--target', 'd', '--mode', 'follower', '--plan', 'p'], { AIPD_API_KEY: 'b' }),
    ).toMatchObject({ options: { token: 'b' } });
    const err = (argv: string[]) => {
      const r = parseBatchArgs(argv, {});
      return r.ok ? null : r.error;
    };
    const base = ['--target', 'd', '--mode', 'follower', '--plan', 'p', '--token', 'k'];
    expect(err(['--target', 'd', '--plan', 'p'])).toBe('--mode: required (follower or batch_normal)');
    expect(err(['--target', 'd', '--mode', 'follower'])).toMatch(/^--plan: required/);
    expect(err([...base, '--concurrency', '0'])).toBe(
      '--concurrency: expected an integer from 1 to 1000, got "0"',
    );
    expect(err([...base, '--url', 'http://x/ws'])).toMatch(/^--url: expected ws:/);
    expect(err(['--target', 'd', '--mode', 'follower', '--plan', 'p'])).toMatch(/^--token: required/);
    expect(err([...base, '--bogus'])).toMatch(/bogus/);
    expect(err([...base, '--resume-wait-ms', '1.5'])).toBe(
      '--resume-wait-ms: expected a whole number of milliseconds, got "1.5"',
    );
    expect(parseBatchArgs([...base, '--resume-wait-ms', '2500'], {})).toMatchObject({
      options: { resumeWaitMs: 2500 },
    });
    expect(parseBatchArgs(base, {})).toMatchObject({ options: { resumeWaitMs: 600_000 } });
    expect(parseBatchArgs(['--help'], {})).toEqual({ ok: true, help: true });
  });
});
