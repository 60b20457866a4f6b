/**
 * Crash recovery with real processes: `aipd serve` on SQLite runs a 20-step plan on a device; the server is killed
 * with SIGKILL mid-task and restarted on the same port and data dir; the device and the controller reconnect by
 * themselves; the task resumes from its checkpoint and completes. Every step ran, at most one ran twice, and the
 * session's status history shows the crash. Also: `--resume never` (the task ends failed at the restart), and a
 * plan whose oldest step results were trimmed from the log (it resumes where it stopped, not from step 0).
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../protocol/index.js';
import { AipControllerClient, AipDeviceClient } from '../../src/client/index.js';
import { planRequest } from '../helpers/aip-server.js';
import { serveProcess, type ServedProcess } from '../helpers/cli-process.js';

const KEY = 'crash-resume-key';
const STEPS = 20;
const KILL_AFTER = 8;
const procs: ChildProcessWithoutNullStreams[] = [];
const dirs: string[] = [];
const clients: (AipDeviceClient | AipControllerClient)[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function serve(port: number, dataDir: string, extra: string[] = []): Promise<ServedProcess> {
  const env = { AIPD_STORE: 'sqlite', AIPD_DATA_DIR: dataDir };
  return serveProcess(port, KEY, { extra: ['--resume-grace-ms', '30000', ...extra], env, track: procs });
}

/** A device that records every step it runs (40 ms each) and a controller that keeps every task_end. */
function pair(url: string): {
  device: AipDeviceClient;
  controller: AipControllerClient;
  ran: number[];
  ends: ServerMessage[];
} {
  const reconnect = { initialDelayMs: 100, maxDelayMs: 500 };
  const ran: number[] = [];
  const device = new AipDeviceClient({
    url,
    token: KEY,
    clientId: 'crash-dev',
    platform: 'linux',
    reconnect,
    onCommand: async (cmd) => {
      const results = [];
      for (const a of cmd.actions ?? []) {
        ran.push((a.parameters as { i: number }).i);
        await new Promise((r) => setTimeout(r, 40));
        results.push({
          status: 'success' as const,
          result: `step ${(a.parameters as { i: number }).i}`,
          call_id: a.call_id,
        });
      }
      return results;
    },
  });
  const controller = new AipControllerClient({
    url,
    token: KEY,
    clientId: 'crash-ctl',
    targetId: 'crash-dev',
    reconnect,
  });
  for (const c of [device, controller]) {
    c.on('error', () => undefined);
    clients.push(c);
  }
  const ends: ServerMessage[] = [];
  controller.on('frame', (m) => {
    if (m.type === 'task_end') ends.push(m);
  });
  return { device, controller, ran, ends };
}

async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Starts `aipd serve` (with `extra` flags) on a fresh data dir, has the pair run an n-step plan as session `id`, and
 * kills the server with SIGKILL once the device has run `killAfter` steps. `restart` serves the same port and dir.
 */
async function runThenKill(o: { id: string; steps: number; killAfter: number; extra?: string[] }) {
  const dataDir = mkdtempSync(join(tmpdir(), 'aipd-crash-'));
  dirs.push(dataDir);
  const first = await serve(0, dataDir, o.extra);
  const p = pair(`ws://127.0.0.1:${first.port}/ws`);
  await p.device.connect();
  await p.controller.connect();
  await p.controller.requestTask({
    request: planRequest(o.steps, 'work'),
    sessionId: o.id,
    taskName: o.id.replace('-', '_'),
  });
  await waitUntil(() => p.ran.length >= o.killAfter, 30_000, `${o.killAfter} steps`);
  first.proc.kill('SIGKILL');
  await first.exit;
  const base = `http://127.0.0.1:${first.port}`;
  /** GET `path` with the key, as JSON. */
  const get = async <T>(path: string): Promise<T> =>
    (await (await fetch(`${base}${path}`, { headers: { 'x-api-key': KEY } })).json()) as T;
  return { ...p, get, restart: () => serve(first.port, dataDir, o.extra) };
}

/** Every step of an n-step plan ran, and at most one (the one in flight at the crash) ran twice. */
function expectEveryStepAtMostOneTwice(ran: number[], steps: number): void {
  const counts = new Map<number, number>();
  for (const i of ran) counts.set(i, (counts.get(i) ?? 0) + 1);
  expect([...counts.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: steps }, (_, i) => i));
  expect([...counts.values()].filter((n) => n > 1).length).toBeLessThanOrEqual(1);
  expect(Math.max(...counts.values())).toBeLessThanOrEqual(2);
}

describe('crash recovery', () => {
  it('resumes a 20-step plan after SIGKILL: every step runs, at most one twice, and the history shows the crash', async () => {
    const r = await runThenKill({ id: 'crash-task', steps: STEPS, killAfter: KILL_AFTER });
    await r.restart();
    await waitUntil(() => r.ends.length > 0, 60_000, 'task_end after the restart');
    const end = r.ends[0]!;
    expect(end).toMatchObject({ status: 'completed', session_id: 'crash-task' });
    expect((end.result as { steps_completed: number }).steps_completed).toBe(STEPS);
    expectEveryStepAtMostOneTwice(r.ran, STEPS);

    const session = await r.get<{
      status: string;
      status_history: { status: string; reason?: string }[];
    }>('/sessions/crash-task');
    expect(session.status).toBe('completed');
    expect(session.status_history.map((h) => h.status)).toEqual(['active', 'crashed', 'active', 'completed']);
    expect(session.status_history[1]!.reason).toBe('aipd stopped unexpectedly while this session was active');
    const result = await r.get<Record<string, unknown>>('/api/task_result/crash_task');
    expect(result).toMatchObject({ status: 'done', task_status: 'completed', session_id: 'crash-task' });
  }, 120_000);

  it('with --resume never, ends a crashed task failed at the restart and tells its requester', async () => {
    const r = await runThenKill({
      id: 'never-task',
      steps: STEPS,
      killAfter: 3,
      extra: ['--resume', 'never'],
    });
    const ranBefore = r.ran.length;
    await r.restart();
    // Well within the 30 s grace: `never` does not wait for the device.
    await waitUntil(() => r.ends.length > 0, 15_000, 'task_end after the restart');
    const reason = 'the task was not resumed: aipd stopped while running it, and runs with --resume never';
    expect(r.ends[0]).toMatchObject({ status: 'failed', session_id: 'never-task', error: reason });
    expect(r.ran.length).toBe(ranBefore);

    const session = await r.get<{
      status_history: { status: string }[];
      task: { state: string; state_history: { state: string; reason?: string }[] };
    }>('/sessions/never-task');
    expect(session.status_history.map((h) => h.status)).toEqual(['active', 'crashed', 'failed']);
    expect(session.task.state).toBe('failed');
    expect(session.task.state_history.at(-1)).toMatchObject({ state: 'failed', reason });
    const result = await r.get<Record<string, unknown>>('/api/task_result/never_task');
    expect(result).toMatchObject({ status: 'done', task_status: 'failed', session_id: 'never-task' });
  }, 120_000);

  it('resumes where it stopped when the oldest steps were trimmed from the log (--event-log-max), not from step 0', async () => {
    const steps = 40;
    const r = await runThenKill({ id: 'trim-task', steps, killAfter: 30, extra: ['--event-log-max', '20'] });
    const ranBefore = new Set(r.ran).size;
    await r.restart();
    await waitUntil(() => r.ends.length > 0, 60_000, 'task_end after the restart');
    expect(r.ends[0]).toMatchObject({ status: 'completed', session_id: 'trim-task' });
    const result = r.ends[0]!.result as {
      steps_completed: number;
      steps: { step: number; results: unknown[]; results_trimmed?: true }[];
    };
    expect(result.steps_completed).toBe(steps);
    expect(result.steps.map((s) => s.step)).toEqual(Array.from({ length: steps }, (_, i) => i));
    // The oldest steps' results were trimmed (20 events are about 10 steps), and they say so; the rest are whole.
    const trimmed = result.steps.filter((s) => s.results_trimmed);
    expect(trimmed.length).toBeGreaterThan(0);
    expect(trimmed.every((s) => s.results.length === 0 && s.step < ranBefore)).toBe(true);
    expect(result.steps[steps - 1]!.results).toHaveLength(1);
    expectEveryStepAtMostOneTwice(r.ran, steps);
  }, 120_000);
});
