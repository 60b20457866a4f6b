/**
 * The client against the real aipd server (startServer on port 0): device + controller, a plan task, device info;
 * and a controller whose connection drops while a task runs. The server stays up, so it cancels the task and tells
 * nobody (ufo-aip.md §8.4): the client, once registered again, reads the task's record and settles its waiter from
 * it at once, instead of waiting out `resumeWaitMs`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { aipError } from '../../protocol/index.js';
import { AipControllerClient, AipDeviceClient } from '../../src/client/index.js';
import { endedTaskEnd, httpBase } from '../../src/client/ended-check.js';
import { startServer, type RunningServer } from '../../src/app/server.js';
import { planRequest } from '../helpers/aip-server.js';
import { until } from '../helpers/process.js';

let server: RunningServer | null = null;
const clients: (AipDeviceClient | AipControllerClient)[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server?.close();
  server = null;
});

describe.each(['json', 'msgpack'] as const)('client against aipd (%s)', (codec) => {
  it('runs a plan task from a controller on a device and reads device info', async () => {
    server = await startServer({ port: 0, apiKey: 'k3y', logLevel: 'silent', store: 'memory' });
    const url = `ws://127.0.0.1:${server.port}/ws`;
    const calls: string[] = [];
    const dev = new AipDeviceClient({
      url,
      token: 'k3y',
      clientId: 'dev1',
      codec,
      reconnect: false,
      systemInfo: { device_id: 'dev1', cpu_count: 3 },
      onCommand: (cmd) =>
        (cmd.actions ?? []).map(
          (a) => (calls.push(a.tool_name), { status: 'success' as const, result: `did ${a.tool_name}` }),
        ),
    });
    clients.push(dev);
    await dev.connect();
    const ctl = new AipControllerClient({
      url,
      token: 'k3y',
      clientId: 'k@dev1',
      targetId: 'dev1',
      codec,
      reconnect: false,
    });
    clients.push(ctl);
    await ctl.connect();

    const info = await ctl.deviceInfo();
    expect(info).toMatchObject({ device_id: 'dev1', cpu_count: 3 });

    const plan = {
      task: 'demo',
      steps: [{ actions: [{ tool_name: 'type_text', tool_type: 'action', call_id: 'c1' }] }],
    };
    const end = await ctl.runTask({ request: JSON.stringify(plan), sessionId: 'k@t1', timeoutMs: 10_000 });
    expect(end).toMatchObject({ type: 'task_end', status: 'completed', session_id: 'k@t1' });
    expect(calls).toEqual(['type_text']);

    // Refused by the server (which text depends on its target policy), delivered as a rejection.
    await expect(ctl.runTask({ request: 'x', targetId: 'nobody' })).rejects.toThrow(
      /not connected|Not authorized/,
    );
    expect(ctl.connected).toBe(true);
  });
});

const KEY = 'ended-k3y';
/** A device that takes its commands and never answers them, and a controller that reconnects within tens of ms. */
async function setUp(resumeCheckMs?: number): Promise<{ s: RunningServer; ctl: AipControllerClient }> {
  const s = await startServer({ port: 0, apiKey: KEY, logLevel: 'silent', store: 'memory' });
  server = s;
  const url = `ws://127.0.0.1:${s.port}/ws`;
  const dev = new AipDeviceClient({
    url,
    token: KEY,
    clientId: 'dev1',
    reconnect: false,
    onCommand: () => new Promise(() => undefined),
  });
  clients.push(dev);
  await dev.connect();
  const ctl = new AipControllerClient({
    url,
    token: KEY,
    clientId: 'k@dev1',
    targetId: 'dev1',
    reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
    resumeWaitMs: 60_000,
    ...(resumeCheckMs !== undefined ? { resumeCheckMs } : {}),
  });
  clients.push(ctl);
  await ctl.connect();
  return { s, ctl };
}

/** Drops the controller's connection from the server's side, as a network drop would end it. */
function drop(s: RunningServer): void {
  s.registry.get('k@dev1')!.conn.close(1001, 'network drop (test)');
}

describe('a task that ended while its controller was away', () => {
  it('is settled from its record once the controller registers again, not after resumeWaitMs', async () => {
    const { s, ctl } = await setUp();
    const { sessionId } = await ctl.requestTask({ request: planRequest(2), taskName: 'away' });
    const end = ctl.waitTaskEnd(sessionId);
    await until(() => s.tasks.live.has(sessionId), 'the task to run');
    const t0 = Date.now();
    drop(s);
    const msg = await end;
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(msg).toMatchObject({
      type: 'task_end',
      status: 'failed',
      session_id: sessionId,
      task_name: 'away',
    });
    expect(msg.error).toBe(aipError('REQUESTER_DISCONNECTED').message);
    expect(ctl.connected).toBe(true);
  });

  it('keeps waiting when resumeCheckMs is 0 (the record is not read)', async () => {
    const { s, ctl } = await setUp(0);
    const { sessionId } = await ctl.requestTask({ request: planRequest(2), taskName: 'away' });
    let settled = false;
    const end = ctl.waitTaskEnd(sessionId).finally(() => (settled = true));
    await until(() => s.tasks.live.has(sessionId), 'the task to run');
    drop(s);
    await until(
      () => !s.tasks.live.has(sessionId) && s.registry.get('k@dev1') !== undefined,
      'the re-registration',
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(settled).toBe(false);
    const rejected = expect(end).rejects.toThrow(/Client closed/);
    await ctl.close();
    await rejected;
  });

  it('reads a record as a task_end only once it has ended', async () => {
    const { s, ctl } = await setUp();
    const base = httpBase(`ws://127.0.0.1:${s.port}/ws`);
    expect(base).toBe(`http://127.0.0.1:${s.port}`);
    const { sessionId } = await ctl.requestTask({ request: planRequest(2), taskName: 'read' });
    await until(() => s.tasks.live.has(sessionId), 'the task to run');
    expect(await endedTaskEnd(base, KEY, sessionId, 5_000)).toBeNull(); // still running
    expect(await endedTaskEnd(base, KEY, 'no-such-session', 5_000)).toBeNull();
    await expect(endedTaskEnd(base, 'wrong-key', sessionId, 5_000)).rejects.toThrow(/answered HTTP 401/);
    await expect(endedTaskEnd('http://127.0.0.1:1', KEY, sessionId, 5_000)).rejects.toThrow();
    // A zero or infinite request timeout does not turn the read off (a finite fallback applies).
    expect(await endedTaskEnd(base, KEY, sessionId, 0)).toBeNull();
    expect(await endedTaskEnd(base, KEY, sessionId, Infinity)).toBeNull();
    s.tasks.cancelById(sessionId, 'stopped by the test');
    await until(() => !s.tasks.live.has(sessionId), 'the task to end');
    await until(
      async () => (await endedTaskEnd(base, KEY, sessionId, 5_000)) !== null,
      'the end to be recorded',
    );
    expect(await endedTaskEnd(base, KEY, sessionId, 5_000)).toMatchObject({
      type: 'task_end',
      status: 'failed',
      session_id: sessionId,
      task_name: 'read',
      error: 'stopped by the test',
      result: { steps_completed: 0, steps: [] },
    });
  });
});
