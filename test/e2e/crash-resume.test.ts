/**
 * Crash recovery with real processes: `aipd serve` on SQLite runs a 20-step plan on a device; the server is killed
 * with SIGKILL mid-task and restarted on the same port and data dir; the device and the controller reconnect by
 * themselves; the task resumes from its checkpoint and completes. Every step ran, at most one ran twice, and the
 * session's status history shows the crash.
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

afterEach(() => {
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
  for (const c of [device, controller]) c.on('error', () => undefined);
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

describe('crash recovery', () => {
  it('resumes a 20-step plan after SIGKILL: every step runs, at most one twice, and the history shows the crash', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'aipd-crash-'));
    dirs.push(dataDir);
    const first = await serve(0, dataDir);
    const url = `ws://127.0.0.1:${first.port}/ws`;
    const { device, controller, ran, ends } = pair(url);
    try {
      await device.connect();
      await controller.connect();
      await controller.requestTask({
        request: planRequest(STEPS, 'work'),
        sessionId: 'crash-task',
        taskName: 'crash_task',
      });
      await waitUntil(() => ran.length >= KILL_AFTER, 20_000, `${KILL_AFTER} steps`);
      first.proc.kill('SIGKILL');
      await first.exit;

      await serve(first.port, dataDir);
      await waitUntil(() => ends.length > 0, 60_000, 'task_end after the restart');
      const end = ends[0]!;
      expect(end).toMatchObject({ status: 'completed', session_id: 'crash-task' });
      expect((end.result as { steps_completed: number }).steps_completed).toBe(STEPS);

      // Every step ran; at most the one in flight at the crash ran twice.
      const counts = new Map<number, number>();
      for (const i of ran) counts.set(i, (counts.get(i) ?? 0) + 1);
      expect([...counts.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: STEPS }, (_, i) => i));
      const twice = [...counts.values()].filter((n) => n > 1);
      expect(twice.length).toBeLessThanOrEqual(1);
      expect(Math.max(...counts.values())).toBeLessThanOrEqual(2);

      const base = `http://127.0.0.1:${first.port}`;
      const headers = { 'x-api-key': KEY };
      const session = (await (await fetch(`${base}/sessions/crash-task`, { headers })).json()) as {
        status: string;
        status_history: { status: string; reason?: string }[];
      };
      expect(session.status).toBe('completed');
      expect(session.status_history.map((h) => h.status)).toEqual([
        'active',
        'crashed',
        'active',
        'completed',
      ]);
      expect(session.status_history[1]!.reason).toBe(
        'aipd stopped unexpectedly while this session was active',
      );
      const result = (await (
        await fetch(`${base}/api/task_result/crash_task`, { headers })
      ).json()) as Record<string, unknown>;
      expect(result).toMatchObject({ status: 'done', task_status: 'completed', session_id: 'crash-task' });
    } finally {
      await device.close();
      await controller.close();
    }
  }, 120_000);

  it('with --resume never, ends a crashed task failed at the restart and tells its requester', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'aipd-crash-'));
    dirs.push(dataDir);
    const first = await serve(0, dataDir, ['--resume', 'never']);
    const { device, controller, ran, ends } = pair(`ws://127.0.0.1:${first.port}/ws`);
    try {
      await device.connect();
      await controller.connect();
      await controller.requestTask({
        request: planRequest(STEPS, 'work'),
        sessionId: 'never-task',
        taskName: 'never_task',
      });
      await waitUntil(() => ran.length >= 3, 20_000, '3 steps');
      first.proc.kill('SIGKILL');
      await first.exit;
      const ranBefore = ran.length;

      await serve(first.port, dataDir, ['--resume', 'never']);
      // Well within the 30 s grace: `never` does not wait for the device.
      await waitUntil(() => ends.length > 0, 15_000, 'task_end after the restart');
      const reason = 'the task was not resumed: aipd stopped while running it, and runs with --resume never';
      expect(ends[0]).toMatchObject({ status: 'failed', session_id: 'never-task', error: reason });
      expect(ran.length).toBe(ranBefore);

      const base = `http://127.0.0.1:${first.port}`;
      const headers = { 'x-api-key': KEY };
      const session = (await (await fetch(`${base}/sessions/never-task`, { headers })).json()) as {
        status: string;
        status_history: { status: string }[];
      };
      expect(session.status_history.map((h) => h.status)).toEqual(['active', 'crashed', 'failed']);
      const result = (await (
        await fetch(`${base}/api/task_result/never_task`, { headers })
      ).json()) as Record<string, unknown>;
      expect(result).toMatchObject({ status: 'done', task_status: 'failed', session_id: 'never-task' });
    } finally {
      await device.close();
      await controller.close();
    }
  }, 120_000);

  it('resumes where it stopped when the oldest steps were trimmed from the log (--event-log-max), not from step 0', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'aipd-crash-'));
    dirs.push(dataDir);
    const steps = 40;
    const first = await serve(0, dataDir, ['--event-log-max', '20']);
    const { device, controller, ran, ends } = pair(`ws://127.0.0.1:${first.port}/ws`);
    try {
      await device.connect();
      await controller.connect();
      await controller.requestTask({
        request: planRequest(steps, 'work'),
        sessionId: 'trim-task',
        taskName: 'trim_task',
      });
      await waitUntil(() => ran.length >= 30, 30_000, '30 steps');
      first.proc.kill('SIGKILL');
      await first.exit;
      const ranBefore = new Set(ran);

      await serve(first.port, dataDir, ['--event-log-max', '20']);
      await waitUntil(() => ends.length > 0, 60_000, 'task_end after the restart');
      expect(ends[0]).toMatchObject({ status: 'completed', session_id: 'trim-task' });
      const result = ends[0]!.result as {
        steps_completed: number;
        steps: { step: number; results: unknown[]; results_trimmed?: true }[];
      };
      expect(result.steps_completed).toBe(steps);
      expect(result.steps.map((s) => s.step)).toEqual(Array.from({ length: steps }, (_, i) => i));
      // The oldest steps' results were trimmed (20 events are about 10 steps), and they say so; the rest are whole.
      const trimmed = result.steps.filter((s) => s.results_trimmed);
      expect(trimmed.length).toBeGreaterThan(0);
      expect(trimmed.every((s) => s.results.length === 0 && s.step < ranBefore.size)).toBe(true);
      expect(result.steps[steps - 1]!.results).toHaveLength(1);

      // Every step ran; at most the one in flight at the crash ran twice.
      const counts = new Map<number, number>();
      for (const i of ran) counts.set(i, (counts.get(i) ?? 0) + 1);
      expect([...counts.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: steps }, (_, i) => i));
      expect([...counts.values()].filter((n) => n > 1).length).toBeLessThanOrEqual(1);
      expect(ran.length).toBeLessThanOrEqual(steps + 1);
    } finally {
      await device.close();
      await controller.close();
    }
  }, 120_000);
});
