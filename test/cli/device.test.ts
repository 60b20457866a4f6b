/**
 * `aipd device` as a real child process against a real server: what it advertises at registration, channels
 * served through the server to a controller (a stdio command, a RESET that kills the process group, a file list),
 * SIGTERM (exit 0, its processes gone), waiting for a server that is not up yet and reconnecting after a server
 * restart, `--plan` through a SIGKILL and restart of `aipd serve` (and its bounded wait when the server stays
 * down), and bad flags (exit 2 with a message).
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { aipError } from '../../protocol/index.js';
import { StdioDecoder, StdioTag } from '../../protocol/stdio.js';
import type { ChannelEndpoint } from '../../src/channel/endpoint.js';
import { attachChannelMux } from '../../src/client/channels/attach.js';
import { listFiles } from '../../src/client/channels/file-client.js';
import { ptyAvailable } from '../../src/client/channels/pty.js';
import { parseDeviceFlags } from '../../src/cli/device-flags.js';
import { AipControllerClient } from '../../src/client/index.js';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import {
  aipdProcess,
  collect,
  serveProcess,
  waitForLine,
  type Collected,
  type ServedProcess,
} from '../helpers/cli-process.js';
import { alive, until } from '../helpers/process.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

const procs: ChildProcessWithoutNullStreams[] = [];
const closers: (() => Promise<unknown>)[] = [];
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'aipd-device-cli-'));
});
afterEach(async () => {
  for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function device(
  args: string[],
  env: Record<string, string> = {},
): { proc: ChildProcessWithoutNullStreams; io: Collected } {
  const proc = aipdProcess(['device', ...args], env);
  procs.push(proc);
  return { proc, io: collect(proc) };
}

async function server(port = 0): Promise<Server> {
  const s = await startTestServer({ port });
  closers.push(() => s.close());
  return s;
}

/** A controller with a live task session on `deviceId` (the device runs `wait` 60 s, so the session stays up). */
async function controllerOn(s: Server, deviceId: string) {
  const controller = new AipControllerClient({
    url: `ws://127.0.0.1:${s.port}/ws`,
    token: TEST_KEY,
    clientId: `k@${deviceId}`,
    targetId: deviceId,
    reconnect: false,
  });
  controller.on('error', () => undefined);
  const mux = attachChannelMux(controller);
  await controller.connect();
  closers.push(() => controller.close());
  const plan = JSON.stringify({
    task: 'hold the session',
    steps: [{ actions: [{ tool_name: 'wait', tool_type: 'action', parameters: { ms: 60_000 } }] }],
  });
  const { sessionId } = await controller.requestTask({ request: plan, sessionId: `s@${deviceId}` });
  return { controller, mux, sessionId };
}

/** Reads stdio records from `ep` into `out` until FIN; resolves with the trailer. */
function readStdio(ep: ChannelEndpoint, out: { stdout: string; stderr: string }): Promise<unknown> {
  const dec = new StdioDecoder();
  const done = (async () => {
    for (let c = await ep.read(); c !== null; c = await ep.read()) {
      const recs = dec.push(c);
      if (!Array.isArray(recs)) throw recs;
      for (const r of recs)
        out[r.tag === StdioTag.STDERR ? 'stderr' : 'stdout'] += Buffer.from(r.payload).toString();
    }
    return ep.trailer;
  })();
  done.catch(() => undefined);
  return done;
}

describe('aipd device (a real child process)', () => {
  it('registers advertising what it serves, serves channels through the server, and stops cleanly on SIGTERM', async () => {
    const s = await server();
    const root = path.join(tmp, 'root1');
    await import('node:fs/promises').then((fs) => fs.mkdir(root));
    await writeFile(path.join(root, 'hello.txt'), 'hi');
    const { proc, io } = device(
      [
        '--url',
        `ws://127.0.0.1:${s.port}/ws`,
        '--client-id',
        'agent-1',
        '--root',
        root,
        '--allow-exec',
        '--allow-port',
        '9090,8080',
        '--allow-port',
        '7070',
      ],
      { AIPD_API_KEY: TEST_KEY },
    );
    await waitForLine(io.out, /registered as agent-1/);
    const logLine = io
      .out()
      .split('\n')
      .find((l) => l.includes('registered as agent-1'))!;
    expect(JSON.parse(logLine)).toMatchObject({ level: 30, msg: 'registered as agent-1' });
    expect(s.registry.get('agent-1')?.metadata.aipd_device).toEqual({
      version: 1,
      channels: ['file', 'stream', 'port'],
      exec: true,
      pty: await ptyAvailable(),
      root: true,
      ports: [7070, 8080, 9090],
    });

    const { mux, sessionId } = await controllerOn(s, 'agent-1');
    const open = (params: Record<string, unknown>) =>
      mux.open({ session_id: sessionId, kind: 'stream', params: { framing: 'stdio', ...params } });
    // A command, with its stdout, stderr and exit code.
    const out1 = { stdout: '', stderr: '' };
    const ep1 = await open({ command: 'echo hi; echo oops >&2; exit 4', shell: true });
    await ep1.end();
    expect(await readStdio(ep1, out1)).toEqual({ exit_code: 4, signal: null, pty: false });
    expect(out1).toEqual({ stdout: 'hi\n', stderr: 'oops\n' });
    // A RESET kills the command's process group on the device.
    const out2 = { stdout: '', stderr: '' };
    const ep2 = await open({ command: 'sleep 30 & echo $$ $!; wait', shell: true });
    const done2 = readStdio(ep2, out2);
    await until(() => out2.stdout.endsWith('\n'));
    const pids = out2.stdout.trim().split(' ').map(Number);
    ep2.reset();
    await expect(done2).rejects.toBeDefined();
    await until(() => pids.every((p) => !alive(p)));
    // The root's listing.
    const { files } = await listFiles(mux, sessionId, '.');
    expect(files.map((f) => f.filename)).toEqual(['hello.txt']);
    // SIGTERM while a command runs: the command is killed, the agent exits 0.
    const out3 = { stdout: '', stderr: '' };
    const ep3 = await open({ command: 'echo $$; exec sleep 30', shell: true });
    void readStdio(ep3, out3);
    await until(() => out3.stdout.endsWith('\n'));
    const pid3 = Number(out3.stdout.trim());
    proc.kill('SIGTERM');
    expect(await io.exit).toBe(0);
    await until(() => !alive(pid3));
    expect(io.out()).toMatch(/"msg":"device agent stopped"/);
    await until(() => s.registry.get('agent-1') === undefined);
  });

  it('advertises nothing it was not allowed, and refuses those channels', async () => {
    const s = await server();
    const { proc, io } = device([
      '--url',
      `ws://127.0.0.1:${s.port}/ws`,
      '--token',
      TEST_KEY,
      '--client-id',
      'agent-2',
    ]);
    await waitForLine(io.out, /registered as agent-2/);
    expect(s.registry.get('agent-2')?.metadata.aipd_device).toEqual({
      version: 1,
      channels: [],
      exec: false,
      pty: false,
      root: false,
      ports: [],
    });
    const { mux, sessionId } = await controllerOn(s, 'agent-2');
    await expect(
      mux.open({ session_id: sessionId, kind: 'stream', params: { framing: 'stdio', command: 'true' } }),
    ).rejects.toMatchObject({ code: 7041 });
    await expect(
      mux.open({ session_id: sessionId, kind: 'port', params: { port: 22 } }),
    ).rejects.toMatchObject({
      code: 7031,
    });
    await expect(listFiles(mux, sessionId, '.')).rejects.toMatchObject({ code: 7011 });
    proc.kill('SIGINT');
    expect(await io.exit).toBe(0);
  });

  it('waits for a server that is not up yet, and re-registers after the server restarts', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as net.AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const { proc, io } = device([
      '--url',
      `ws://127.0.0.1:${port}/ws`,
      '--token',
      TEST_KEY,
      '--client-id',
      'agent-3',
    ]);
    await waitForLine(io.out, /cannot register; retrying/);
    const first = await startTestServer({ port });
    closers.push(() => first.close());
    await waitForLine(io.out, /registered as agent-3/);
    await first.close();
    await waitForLine(io.out, /"msg":"disconnected"/);
    const second = await server(port);
    await waitForLine(io.out, /"reconnected":true,"msg":"registered as agent-3"/, 30_000);
    expect(second.registry.get('agent-3')?.metadata.aipd_device).toMatchObject({ version: 1 });
    proc.kill('SIGTERM');
    expect(await io.exit).toBe(0);
  });

  it('bad flags exit 2 with a message naming the flag', async () => {
    const cases: [string[], RegExp][] = [
      [['--token', 'k', '--allow-port', '8080,70000'], /--allow-port: '70000' is not a port \(1–65535\)/],
      [['--token', 'k', '--allow-port', 'http'], /--allow-port: 'http' is not a port/],
      [['--token', 'k', '--root', path.join(tmp, 'nope')], /--root: '.*nope' is not a directory/],
      [['--token', 'k', '--url', 'http://x'], /--url: 'http:\/\/x' is not a ws:\/\/ or wss:\/\/ URL/],
      [['--token', 'k', '--log-level', 'loud'], /--log-level: 'loud' is not one of/],
      [['--token', 'k', '--bogus'], /Unknown option '--bogus'/],
      [[], /--token: required/],
    ];
    await Promise.all(
      cases.map(async ([args, re]) => {
        const { io } = device(args, { AIPD_API_KEY: '' });
        expect(await io.exit).toBe(2);
        expect(io.err()).toMatch(re);
      }),
    );
  });
});

describe('aipd device --plan across a server crash or a dropped connection (real processes)', () => {
  const STEPS = 8;
  /** A plan whose step i appends `s<i>` to ran.log in the device's --root, then sleeps 300 ms. */
  const slowPlan = JSON.stringify({
    task: 'crash me',
    steps: Array.from({ length: STEPS }, (_, i) => ({
      actions: [
        {
          tool_name: 'execute_command',
          tool_type: 'action',
          parameters: { command: `echo s${i} >> ran.log; sleep 0.3` },
        },
      ],
    })),
  });

  async function setUp(name: string): Promise<{ root: string; dataDir: string; planFile: string }> {
    const root = await mkdtemp(path.join(tmp, `${name}-root-`));
    const dataDir = await mkdtemp(path.join(tmp, `${name}-data-`));
    const planFile = path.join(tmp, `${name}-plan.json`);
    await writeFile(planFile, slowPlan);
    return { root, dataDir, planFile };
  }
  const serveOn = (port: number, dataDir: string): Promise<ServedProcess> =>
    serveProcess(port, TEST_KEY, { env: { AIPD_STORE: 'sqlite', AIPD_DATA_DIR: dataDir }, track: procs });
  /** `aipd device --plan` with exec in `root`, logging warnings only. */
  const planDevice = (port: number, id: string, root: string, planFile: string, extra: string[] = []) =>
    device([
      ...['--url', `ws://127.0.0.1:${port}/ws`, '--token', TEST_KEY, '--client-id', id],
      ...['--root', root, '--allow-exec', '--log-level', 'warn', ...extra, '--plan', planFile],
    ]);
  const ranLines = async (root: string): Promise<string[]> =>
    (await readFile(path.join(root, 'ran.log'), 'utf8').catch(() => '')).split('\n').filter(Boolean);

  it('keeps reconnecting after SIGKILL of aipd serve and prints the task_end of the resumed task (exit 0)', async () => {
    const { root, dataDir, planFile } = await setUp('resume');
    const first = await serveOn(0, dataDir);
    const { io } = planDevice(first.port, 'plan-dev', root, planFile);
    await until(async () => (await ranLines(root)).length >= 2, 'two steps before the kill', 30_000);
    first.proc.kill('SIGKILL');
    await first.exit;
    await serveOn(first.port, dataDir);

    expect(await io.exit).toBe(0);
    expect(io.err()).not.toMatch(/aipd:|Error/);
    const printed = JSON.parse(io.out()) as { status: string; result: { steps_completed: number } };
    expect(printed).toMatchObject({ status: 'completed', result: { steps_completed: STEPS } });
    const ran = await ranLines(root);
    expect(new Set(ran)).toEqual(new Set(Array.from({ length: STEPS }, (_, i) => `s${i}`)));
    expect(ran.length).toBeLessThanOrEqual(STEPS + 1); // at most the step in flight ran twice

    const list = (await (
      await fetch(`http://127.0.0.1:${first.port}/sessions?session_type=task`, {
        headers: { 'x-api-key': TEST_KEY },
      })
    ).json()) as {
      status: string;
      status_history: { status: string }[];
      task: { requester_notified: boolean };
    }[];
    expect(list).toHaveLength(1);
    expect(list[0]!.status_history.map((h) => h.status)).toEqual([
      'active',
      'crashed',
      'active',
      'completed',
    ]);
    expect(list[0]!.task.requester_notified).toBe(true);
  }, 90_000);

  it('--resume-wait-ms: 600000 by default, a whole number of milliseconds', () => {
    expect(parseDeviceFlags(['--token', 'k']).resumeWaitMs).toBe(600_000);
    expect(parseDeviceFlags(['--token', 'k', '--resume-wait-ms', '0']).resumeWaitMs).toBe(0);
    expect(() => parseDeviceFlags(['--token', 'k', '--resume-wait-ms', 'soon'])).toThrow(
      "--resume-wait-ms: 'soon' is not a whole number of milliseconds",
    );
  });

  it('exits 1 at once with the task_end read from the record when its connection dropped and the server stayed up', async () => {
    const { root, planFile } = await setUp('dropped');
    const s = await server();
    const { io } = planDevice(s.port, 'plan-dev-3', root, planFile);
    await until(async () => (await ranLines(root)).length >= 1, 'a step before the drop', 30_000);
    // The server stays up and ends the device's own task when it leaves (it tells nobody, as UFO's does).
    s.registry.get('plan-dev-3')!.conn.close(1001, 'network drop (test)');
    const t0 = Date.now();
    expect(await io.exit).toBe(1);
    expect(Date.now() - t0).toBeLessThan(15_000); // the reconnect and one read, not --resume-wait-ms (10 min)
    const printed = JSON.parse(io.out()) as {
      status: string;
      error: string;
      result: { steps_completed: number };
    };
    expect(printed).toMatchObject({ status: 'failed', error: aipError('DEVICE_DISCONNECTED').message });
    expect(printed.result.steps_completed).toBeLessThan(STEPS);
    expect(io.err()).not.toMatch(/^aipd:|\n\s+at /m); // logs only: no error line, no stack trace
  }, 60_000);

  it('gives up with a one-line error (exit 1) when no task_end comes within --resume-wait-ms of the drop', async () => {
    const { root, dataDir, planFile } = await setUp('gone');
    const first = await serveOn(0, dataDir);
    const { io } = planDevice(first.port, 'plan-dev-2', root, planFile, ['--resume-wait-ms', '1500']);
    await until(async () => (await ranLines(root)).length >= 1, 'a step before the kill', 30_000);
    first.proc.kill('SIGKILL');
    await first.exit;
    const t0 = Date.now();
    expect(await io.exit).toBe(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(io.out()).toBe('');
    expect(io.err()).toMatch(
      /^aipd: No task_end for session \S+ within 1500 ms \(resumeWaitMs\) of losing the connection \(code 1006\); /m,
    );
    expect(io.err()).not.toMatch(/\n\s+at /); // no stack trace
  }, 60_000);
});
