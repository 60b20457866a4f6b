/**
 * AIP across cluster nodes, with real servers (uWS on port 0), one Redis (a fresh prefix) and a throwaway
 * PostgreSQL database: a constellation on node A runs plan tasks on a device on node B (ACK, commands, results,
 * one task_end), reads device info, and its task results are readable from either node; a requester that
 * disconnects from A cancels its task on B (UFO §8.4); a device that disconnects from B fails its requester's
 * task on A at once (Q4); `/api/dispatch` on A reaches a device on B; a refused task's error crosses back.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../protocol/index.js';
import { AipControllerClient, AipDeviceClient } from '../../src/client/index.js';
import { planRequest, TEST_KEY } from '../helpers/aip-server.js';
import { waitFor } from '../helpers/redis.js';
import { InProcessNodes, type NodeServer as Server } from './in-process-nodes.js';

describe('AIP across cluster nodes', () => {
  let nodes: InProcessNodes;
  const clients: { close(): Promise<void> }[] = [];

  const node = (nodeId: string): Promise<Server> => nodes.node(nodeId, { drainTimeoutMs: 100 });
  const wsUrl = (s: Server): string => `ws://127.0.0.1:${s.port}/ws`;
  const device = async (
    s: Server,
    clientId: string,
    ran: number[] = [],
    delayMs = 0,
  ): Promise<AipDeviceClient> => {
    const d = new AipDeviceClient({
      url: wsUrl(s),
      token: TEST_KEY,
      clientId,
      platform: 'linux',
      onCommand: async (cmd) => {
        const out = [];
        for (const a of cmd.actions ?? []) {
          ran.push((a.parameters as { i: number }).i);
          if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
          out.push({
            status: 'success' as const,
            result: `ran ${(a.parameters as { i: number }).i}`,
            call_id: a.call_id,
          });
        }
        return out;
      },
    });
    d.on('error', () => undefined);
    clients.push({ close: () => d.close() });
    await d.connect();
    return d;
  };
  const controller = async (s: Server, clientId: string, targetId: string): Promise<AipControllerClient> => {
    const c = new AipControllerClient({ url: wsUrl(s), token: TEST_KEY, clientId, targetId });
    c.on('error', () => undefined);
    clients.push({ close: () => c.close() });
    await c.connect();
    return c;
  };
  const seen = (s: Server, id: string): Promise<void> =>
    waitFor(`node ${s.cluster!.nodeId} to see ${id}`, () => s.registry.get(id) !== undefined);

  beforeAll(async () => {
    nodes = await InProcessNodes.create();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await nodes.reset();
  });
  afterAll(async () => {
    await nodes.dispose();
  });

  it('runs a plan from a constellation on node A on a device on node B: every command once, one task_end, results on both nodes', async () => {
    const a = await node('xa');
    const b = await node('xb');
    const ran: number[] = [];
    await device(b, 'dev-b', ran);
    await seen(a, 'dev-b');
    const ctl = await controller(a, 'ctl-a', 'dev-b');
    const ends: ServerMessage[] = [];
    ctl.on('frame', (m) => {
      if (m.type === 'task_end') ends.push(m);
    });
    const end = await ctl.runTask({
      request: planRequest(10, 'work'),
      sessionId: 'x-1',
      taskName: 'x_task_1',
    });
    expect(end).toMatchObject({ type: 'task_end', status: 'completed', session_id: 'x-1' });
    expect((end.result as { steps_completed: number }).steps_completed).toBe(10);
    expect(ran).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // The session ran where its device is; its record and result are readable from either node.
    expect(b.tasks.live.size).toBe(0);
    for (const s of [a, b]) {
      const res = await fetch(`http://127.0.0.1:${s.port}/api/task_result/x_task_1`, {
        headers: { 'X-API-Key': TEST_KEY },
      });
      expect(await res.json()).toMatchObject({ status: 'done', result: { steps_completed: 10 } });
      const rec = (await (
        await fetch(`http://127.0.0.1:${s.port}/sessions/x-1`, { headers: { 'X-API-Key': TEST_KEY } })
      ).json()) as { status: string };
      expect(rec).toMatchObject({ status: 'completed' });
    }
    expect((await a.sessions.get('x-1'))?.managed_by).toBe('xb');
    await new Promise((r) => setTimeout(r, 200));
    expect(ends).toHaveLength(1);
    // Device info of a device on another node comes from the cluster directory.
    const info = await ctl.deviceInfo('dev-b');
    expect(info).toMatchObject({ platform: expect.any(String) as string });
  });

  it("sends a refusal from the device's node back to the requester on the other node", async () => {
    const a = await node('ra');
    const b = await node('rb');
    const ran: number[] = [];
    await device(b, 'dev-r', ran, 50);
    const ctlB = await controller(b, 'ctl-rb', 'dev-r');
    await ctlB.requestTask({ request: planRequest(40, 'slow'), sessionId: 'r-1', taskName: 'r_1' });
    await waitFor('the task to run on B', () => ran.length >= 1);
    await seen(a, 'dev-r');
    const ctlA = await controller(a, 'ctl-ra', 'dev-r');
    await expect(
      ctlA.requestTask({ request: planRequest(1), sessionId: 'r-1', taskName: 'r_2' }),
    ).rejects.toThrow(/r-1/);
    expect(b.tasks.parties('r-1')).toEqual({ requesterId: 'ctl-rb', executorId: 'dev-r' });
  });

  it('cancels the task on B when its requester disconnects from A, and fails it at once on A when the device leaves B', async () => {
    const a = await node('ca');
    const b = await node('cb');
    const ran: number[] = [];
    const dev = await device(b, 'dev-c', ran, 100);
    await seen(a, 'dev-c');
    const ctl = await controller(a, 'ctl-c', 'dev-c');
    await ctl.requestTask({ request: planRequest(50, 'slow'), sessionId: 'c-1', taskName: 'c_1' });
    await waitFor('the task to run on B', () => ran.length >= 2);
    await ctl.close();
    await waitFor('B to cancel the task', () => b.tasks.live.size === 0);
    const rec = await b.sessions.get('c-1');
    expect(rec?.status).toBe('cancelled');
    expect(rec?.task?.error).toMatch(/requester|disconnect/i);

    // Q4 across nodes: the device leaves B mid-task; the requester on A is told at once.
    const ctl2 = await controller(a, 'ctl-c2', 'dev-c');
    const started = ran.length;
    const endP = ctl2.runTask({ request: planRequest(50, 'slow'), sessionId: 'c-2', taskName: 'c_2' });
    await waitFor('the second task to run', () => ran.length >= started + 2);
    await dev.close();
    const end = await endP;
    expect(end).toMatchObject({ status: 'failed', session_id: 'c-2' });
    expect(String(end.error)).toMatch(/disconnect/i);
  });

  it('cancels and deletes over REST on node A sessions that node B runs', async () => {
    const a = await node('ka');
    const b = await node('kb');
    const ran: number[] = [];
    await device(b, 'dev-k', ran, 100);
    await seen(a, 'dev-k');
    const ctl = await controller(a, 'ctl-k', 'dev-k');
    const first = ctl.runTask({ request: planRequest(50, 'slow'), sessionId: 'k-1', taskName: 'k_1' });
    await waitFor('k-1 to run on B', () => ran.length >= 2);
    const del = await fetch(`http://127.0.0.1:${a.port}/api/sessions/k-1`, {
      method: 'DELETE',
      headers: { 'X-API-Key': TEST_KEY },
    });
    expect(del.status).toBe(200);
    expect(await first).toMatchObject({ status: 'failed', error: 'Task was cancelled by an API request' });

    const started = ran.length;
    const second = ctl.runTask({ request: planRequest(50, 'slow'), sessionId: 'k-2', taskName: 'k_2' });
    await waitFor('k-2 to run on B', () => ran.length >= started + 2);
    const gone = await fetch(`http://127.0.0.1:${a.port}/sessions/k-2`, {
      method: 'DELETE',
      headers: { 'X-API-Key': TEST_KEY },
    });
    expect(gone.status).toBeLessThan(300);
    expect(await second).toMatchObject({ status: 'failed', error: 'Session deleted over the REST API' });
    expect(b.tasks.live.size).toBe(0);
    expect(await b.sessions.get('k-2')).toBeNull();
  });

  it('dispatches over HTTP on node A to a device on node B', async () => {
    const a = await node('da');
    const b = await node('db');
    const tasks: ServerMessage[] = [];
    const d = new AipDeviceClient({
      url: wsUrl(b),
      token: TEST_KEY,
      clientId: 'dev-d',
      platform: 'linux',
      onTask: (m) => tasks.push(m),
    });
    d.on('error', () => undefined);
    clients.push({ close: () => d.close() });
    await d.connect();
    await seen(a, 'dev-d');
    const res = await fetch(`http://127.0.0.1:${a.port}/api/dispatch`, {
      method: 'POST',
      headers: { 'X-API-Key': TEST_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'dev-d', request: 'open notepad', task_name: 'd_1' }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { session_id: string };
    await waitFor('the task frame on the device', () => tasks.length === 1);
    expect(tasks[0]).toMatchObject({
      type: 'task',
      user_request: 'open notepad',
      session_id: body.session_id,
    });

    // A device that runs what it is sent (UFO's client does): the dispatch id resolves on the other node too.
    await device(b, 'dev-d2');
    await seen(a, 'dev-d2');
    const res2 = await fetch(`http://127.0.0.1:${a.port}/api/dispatch`, {
      method: 'POST',
      headers: { 'X-API-Key': TEST_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'dev-d2', request: planRequest(2, 'work'), task_name: 'd_2' }),
    });
    const { session_id: dispatchId } = (await res2.json()) as { session_id: string };
    await waitFor('the dispatched task to finish, read by dispatch id on node b', async () => {
      const r = await fetch(`http://127.0.0.1:${b.port}/api/task_result/${dispatchId}`, {
        headers: { 'X-API-Key': TEST_KEY },
      });
      return ((await r.json()) as { status: string }).status === 'done';
    });
  });
});
