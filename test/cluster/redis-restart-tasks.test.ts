/**
 * Redis restarts (empty) in the middle of a run of two cluster nodes (a private redis-server, SIGKILLed and
 * started again): a task local to node A keeps running meanwhile; a task already running across nodes (requester
 * on A, device on B) completes and its requester gets its one `task_end`; a new cross-node task asked for while
 * Redis is down is refused with a clear, retryable error; after the restart the nodes register their clients
 * again and new cross-node tasks run. Every task's result is in PostgreSQL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../protocol/index.js';
import { AipControllerClient, AipDeviceClient } from '../../src/client/index.js';
import { planRequest, startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { PrivateRedis, waitFor } from '../helpers/redis.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

describe('cluster tasks across a Redis restart', () => {
  let db: TestDatabase;
  let redis: PrivateRedis;
  const dirs: string[] = [];
  beforeAll(async () => {
    db = await createTestDatabase();
    redis = await PrivateRedis.start();
  });
  afterAll(async () => {
    await redis.kill();
    await db.drop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('loses no task: local work goes on, cross-node work is refused (retry) while down and resumes after', async () => {
    const node = async (nodeId: string): Promise<Server> => {
      const dataDir = mkdtempSync(join(tmpdir(), 'aipd-rr-'));
      dirs.push(dataDir);
      return startTestServer({
        store: db.url,
        dataDir,
        nodeId,
        cluster: redis.url,
        clusterLeaseMs: 1_000,
        clusterHeartbeatMs: 200,
        clusterResyncMs: 300,
        drainTimeoutMs: 100,
      });
    };
    const a = await node('rr-a');
    const b = await node('rr-b');
    const url = (s: Server): string => `ws://127.0.0.1:${s.port}/ws`;
    const closers: (() => Promise<void>)[] = [];
    const device = async (s: Server, id: string, ran: string[]): Promise<void> => {
      const d = new AipDeviceClient({
        url: url(s),
        token: TEST_KEY,
        clientId: id,
        platform: 'linux',
        reconnect: false,
        onCommand: async (cmd) => {
          const out = [];
          for (const act of cmd.actions ?? []) {
            ran.push(`${cmd.session_id}:${(act.parameters as { i: number }).i}`);
            await new Promise((r) => setTimeout(r, 60));
            out.push({ status: 'success' as const, result: 'ok', call_id: act.call_id });
          }
          return out;
        },
      });
      d.on('error', () => undefined);
      closers.push(() => d.close());
      await d.connect();
    };
    const controller = async (s: Server, id: string, target: string) => {
      const c = new AipControllerClient({
        url: url(s),
        token: TEST_KEY,
        clientId: id,
        targetId: target,
        reconnect: false,
      });
      c.on('error', () => undefined);
      closers.push(() => c.close());
      await c.connect();
      const ends: ServerMessage[] = [];
      c.on('frame', (m) => {
        if (m.type === 'task_end') ends.push(m);
      });
      return { c, ends };
    };
    try {
      const ranA: string[] = [];
      const ranB: string[] = [];
      await device(a, 'rr-dev-a', ranA);
      await device(b, 'rr-dev-b', ranB);
      await waitFor('a to see rr-dev-b', () => a.registry.get('rr-dev-b') !== undefined);
      const local = await controller(a, 'rr-ctl-local', 'rr-dev-a');
      const cross = await controller(a, 'rr-ctl-cross', 'rr-dev-b');
      await local.c.requestTask({
        request: planRequest(40, 'w'),
        sessionId: 'rr-local',
        taskName: 'rr_local',
      });
      await cross.c.requestTask({
        request: planRequest(40, 'w'),
        sessionId: 'rr-cross',
        taskName: 'rr_cross',
      });
      await waitFor('both tasks to run', () => ranA.length >= 3 && ranB.length >= 3);

      await redis.kill();
      const localBefore = ranA.length;
      await waitFor('the local task to go on while Redis is down', () => ranA.length >= localBefore + 5);
      await waitFor('node a to see Redis down', () => a.cluster!.bus.reachable === false);
      const other = await controller(a, 'rr-ctl-new', 'rr-dev-b').catch((err: unknown) => err);
      // A new registration is refused while Redis is down (close 4020: retry).
      expect(other).toBeInstanceOf(Error);
      await expect(
        cross.c.requestTask({
          request: planRequest(2, 'w'),
          sessionId: 'rr-refused',
          taskName: 'rr_refused',
        }),
      ).rejects.toThrow(/Cannot reach node rr-b .*retry/);

      await redis.restart();
      await waitFor('both tasks to end', () => local.ends.length === 1 && cross.ends.length === 1, 60_000);
      expect(local.ends[0]).toMatchObject({ status: 'completed', session_id: 'rr-local' });
      expect(cross.ends[0]).toMatchObject({ status: 'completed', session_id: 'rr-cross' });
      expect(ranB.filter((s) => s.startsWith('rr-cross:'))).toHaveLength(40);
      expect(new Set(ranB).size).toBe(ranB.length);

      // Cross-node work runs again once the nodes have registered their clients again.
      await waitFor('a to see rr-dev-b again', () => a.registry.get('rr-dev-b') !== undefined, 30_000);
      await waitFor('the bus to be reachable', () => a.cluster!.bus.reachable);
      const again = await cross.c.runTask({
        request: planRequest(3, 'w'),
        sessionId: 'rr-after',
        taskName: 'rr_after',
        timeoutMs: 30_000,
      });
      expect(again).toMatchObject({ status: 'completed', session_id: 'rr-after' });
      for (const sid of ['rr-local', 'rr-cross', 'rr-after'])
        expect((await b.sessions.get(sid))?.status, sid).toBe('completed');
      await new Promise((r) => setTimeout(r, 300));
      expect(cross.ends.filter((e) => e.session_id === 'rr-cross')).toHaveLength(1);
    } finally {
      await Promise.all(closers.map((c) => c().catch(() => undefined)));
      await a.close();
      await b.close();
    }
  }, 120_000);
});
