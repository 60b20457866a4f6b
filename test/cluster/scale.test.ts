/**
 * The scale scenario on real node processes: 3 `aipd serve --cluster` nodes on one private redis-server
 * and one throwaway PostgreSQL database; 100 devices and 10 constellations spread over them; 500 plan tasks of 10
 * commands each, most of them from a constellation on one node for a device on another, all at once.
 *
 * Checked: every task completes; every command reaches the device its session targets (the plan's tool name and
 * the session id both name it); each session's steps arrive exactly once, in order; each requester gets exactly one
 * `task_end` per session; each session's record and result, read from a node other than its device's, say
 * completed with 10 steps, with one completed status and one ended task state, and its event log holds each
 * step's results exactly once, in order, and one `task.ended`. At the end every bus inbox is
 * trimmed, and Redis `used_memory` is logged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../protocol/index.js';
import { AipControllerClient, AipDeviceClient } from '../../src/client/index.js';
import { planRequest } from '../helpers/aip-server.js';
import { NODE_KEY, NodeProcesses, type NodeProcess } from './node-processes.js';

const NODES = 3;
const DEVICES = 100;
const CONSTELLATIONS = 10;
const TASKS = 500;
const STEPS = 10;
/** An inbox holding more than this many entries at the end was not trimmed as it was read. */
const INBOX_LEFT_MAX = 1_000;

const deviceId = (d: number): string => `scale-dev-${d}`;
const ctlId = (c: number): string => `scale-ctl-${c}`;
/** Task k: session `scale-k`, from constellation k % 10, on device k % 100 (5 tasks per device). */
const taskDevice = (k: number): number => k % DEVICES;
const taskCtl = (k: number): number => k % CONSTELLATIONS;
/** Devices on node d % 3; constellations shifted by one, so most tasks cross nodes. */
const deviceNode = (d: number): number => d % NODES;
const ctlNode = (c: number): number => (c + 1) % NODES;

interface DeviceLog {
  /** Session id → the steps (`parameters.i`) received, in arrival order. */
  readonly steps: Map<string, number[]>;
  /** Commands that reached the wrong device. */
  readonly misrouted: string[];
}

interface TaskRecord {
  status: string;
  status_history: { status: string }[];
  task: {
    requester: string;
    executor: string;
    state_history: { state: string }[];
    result: { steps_completed?: number } | null;
    requester_notified: boolean;
  } | null;
}

describe('a 3-node cluster of real processes under 500 cross-node plan tasks', () => {
  let cluster: NodeProcesses;
  const nodes: NodeProcess[] = [];
  const clients: { close(): Promise<void> }[] = [];

  beforeAll(async () => {
    cluster = await NodeProcesses.start();
  });
  afterAll(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
    await cluster?.dispose();
  });

  it('completes every task once, each command on the right device, results readable from any node, inboxes trimmed', async () => {
    const started = Date.now();
    nodes.push(...(await Promise.all(['s1', 's2', 's3'].map((id) => cluster.node(id)))));
    const expected = new Map<string, string>(); // session id → device id
    for (let k = 0; k < TASKS; k++) expected.set(`scale-${k}`, deviceId(taskDevice(k)));

    const logs = new Map<string, DeviceLog>();
    await Promise.all(
      Array.from({ length: DEVICES }, async (_, d) => {
        const id = deviceId(d);
        const log: DeviceLog = { steps: new Map(), misrouted: [] };
        logs.set(id, log);
        const dev = new AipDeviceClient({
          url: nodes[deviceNode(d)]!.wsUrl,
          token: NODE_KEY,
          clientId: id,
          platform: 'linux',
          reconnect: false,
          onCommand: (cmd) => {
            const sid = cmd.session_id ?? '';
            if (expected.get(sid) !== id) log.misrouted.push(`session ${sid}`);
            let got = log.steps.get(sid);
            if (!got) log.steps.set(sid, (got = []));
            return (cmd.actions ?? []).map((a) => {
              if (a.tool_name !== id) log.misrouted.push(`${sid}: tool ${a.tool_name}`);
              got.push((a.parameters as { i: number }).i);
              return { status: 'success' as const, result: `${id} ran ${sid}`, call_id: a.call_id };
            });
          },
        });
        dev.on('error', () => undefined);
        clients.push(dev);
        await dev.connect();
      }),
    );
    const ends = new Map<string, ServerMessage[]>();
    const ctls = await Promise.all(
      Array.from({ length: CONSTELLATIONS }, async (_, c) => {
        const ctl = new AipControllerClient({
          url: nodes[ctlNode(c)]!.wsUrl,
          token: NODE_KEY,
          clientId: ctlId(c),
          reconnect: false,
          requestTimeoutMs: 120_000,
        });
        ctl.on('error', () => undefined);
        ctl.on('frame', (m) => {
          if (m.type !== 'task_end' || typeof m.session_id !== 'string') return;
          const list = ends.get(m.session_id) ?? [];
          list.push(m);
          ends.set(m.session_id, list);
        });
        clients.push(ctl);
        await ctl.connect();
        return ctl;
      }),
    );
    // Every node sees every device in the cluster-wide directory before tasks start.
    for (const n of nodes) {
      await expect
        .poll(
          async () => {
            const { body } = await cluster.get(n, '/api/clients');
            return (body as { online_clients: string[] }).online_clients.length;
          },
          { timeout: 30_000, interval: 100 },
        )
        .toBe(DEVICES + CONSTELLATIONS);
    }

    const crossNode = Array.from({ length: TASKS }, (_, k) => k).filter(
      (k) => deviceNode(taskDevice(k)) !== ctlNode(taskCtl(k)),
    ).length;
    const runStarted = Date.now();
    const finals = await Promise.all(
      Array.from({ length: TASKS }, (_, k) =>
        ctls[taskCtl(k)]!.runTask({
          request: planRequest(STEPS, deviceId(taskDevice(k))),
          targetId: deviceId(taskDevice(k)),
          sessionId: `scale-${k}`,
          taskName: `scale_${k}`,
          timeoutMs: 150_000,
        }),
      ),
    );
    const runMs = Date.now() - runStarted;
    for (const [k, end] of finals.entries()) {
      expect(end, `scale-${k}`).toMatchObject({
        type: 'task_end',
        status: 'completed',
        session_id: `scale-${k}`,
      });
      expect((end.result as { steps_completed: number }).steps_completed).toBe(STEPS);
    }
    // A late second task_end would arrive after the first: give it time to show.
    await new Promise((r) => setTimeout(r, 1_000));
    for (let k = 0; k < TASKS; k++) expect(ends.get(`scale-${k}`), `task_end of scale-${k}`).toHaveLength(1);
    expect(ends.size).toBe(TASKS);

    const steps = Array.from({ length: STEPS }, (_, i) => i);
    for (const [id, log] of logs) {
      expect(log.misrouted, id).toEqual([]);
      const mine = [...expected].filter(([, dev]) => dev === id).map(([sid]) => sid);
      expect([...log.steps.keys()].sort(), id).toEqual(mine.sort());
      for (const [sid, got] of log.steps) expect(got, `${id} ${sid}`).toEqual(steps);
    }

    // The store: each session's record and result, read from a node that is not its device's.
    for (let k0 = 0; k0 < TASKS; k0 += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, TASKS - k0) }, async (_, j) => {
          const k = k0 + j;
          const other = nodes[(deviceNode(taskDevice(k)) + 1 + (k % 2)) % NODES]!;
          const rec = await cluster.get(other, `/sessions/scale-${k}`);
          expect(rec.status, `record of scale-${k}`).toBe(200);
          const r = rec.body as TaskRecord;
          expect(r.status).toBe('completed');
          expect(r.status_history.filter((h) => h.status === 'completed')).toHaveLength(1);
          expect(r.task).toMatchObject({
            requester: ctlId(taskCtl(k)),
            executor: deviceId(taskDevice(k)),
            requester_notified: true,
            result: { steps_completed: STEPS },
          });
          expect(r.task!.state_history.filter((h) => h.state === 'completed')).toHaveLength(1);
          // The event log: each step's results applied exactly once, in order; the task ended once.
          const events = await cluster.get(other, `/sessions/scale-${k}/events?limit=1000`);
          const log = events.body as { type: string; data: { step?: number } }[];
          expect(log.filter((e) => e.type === 'task.results').map((e) => e.data.step)).toEqual(steps);
          expect(log.filter((e) => e.type === 'task.ended')).toHaveLength(1);
          const res = await cluster.get(other, `/api/task_result/scale_${k}`);
          expect(res.body, `result of scale_${k}`).toMatchObject({
            status: 'done',
            result: { steps_completed: STEPS },
          });
        }),
      );
    }

    // Redis: every inbox trimmed as read (the readers trim at most once a second), and its memory at the end.
    const redis = await cluster.client();
    const inboxes = await redis.keys(`${cluster.prefix}inbox:*`);
    expect(inboxes.sort()).toEqual(['s1', 's2', 's3'].map((id) => `${cluster.prefix}inbox:${id}`));
    const lens = async (): Promise<number[]> => Promise.all(inboxes.map((key) => redis.xlen(key)));
    await expect
      .poll(lens, { timeout: 10_000, interval: 200 })
      .toSatisfy((l: number[]) => l.every((n) => n < INBOX_LEFT_MAX));
    const info = await redis.info('memory');
    const usedMemory = Number(/used_memory:(\d+)/.exec(info)?.[1]);
    expect(usedMemory).toBeGreaterThan(0);
    console.log(
      `[scale] ${NODES} nodes, ${DEVICES} devices, ${CONSTELLATIONS} constellations, ${TASKS} tasks × ${STEPS} ` +
        `commands (${crossNode} cross-node): tasks ran in ${runMs} ms, whole test ${Date.now() - started} ms; ` +
        `inbox lengths ${(await lens()).join('/')}; Redis used_memory ${usedMemory} B ` +
        `(${(usedMemory / 1024 / 1024).toFixed(2)} MiB)`,
    );
  }, 240_000);
});
