/**
 * A cluster node's own lifecycle, with real node processes, one Redis (a fresh prefix) and a throwaway PostgreSQL
 * database:
 *
 * - SIGTERM (graceful drain): new registrations there are refused with CLUSTER_DRAINING and close 4020; the
 *   running task finishes and its requester (on another node) gets `task_end` completed; then the device's socket
 *   closes with 1001 and the process exits 0.
 * - SIGSTOP past the lease, then SIGCONT: the other nodes mark its task crashed; on waking the node is fenced — it
 *   gives its session up without writing, closes its sockets with 1001 and joins again — and the device, back
 *   on it, resumes the task there; the requester gets exactly one `task_end`, completed.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode, type ServerMessage } from '../../protocol/index.js';
import { AipControllerClient, AipDeviceClient } from '../../src/client/index.js';
import { planRequest } from '../helpers/aip-server.js';
import { ClusterNodes, getJson, type ClusterNodeProc } from '../helpers/cluster-nodes.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { until } from '../helpers/process.js';
import { RawClient } from '../helpers/raw-client.js';
import { connectRedis, deletePrefix, TEST_REDIS_URL, testPrefix } from '../helpers/redis.js';

const KEY = 'lifecycle-key';

describe('cluster node lifecycle (real processes)', () => {
  let db: TestDatabase;
  let nodes: ClusterNodes;
  const prefix = testPrefix();
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((c) => c().catch(() => undefined)));
    await nodes.stopAll();
    const redis = await connectRedis();
    await deletePrefix(redis, prefix);
    await redis.quit();
  });
  afterAll(async () => {
    await db.drop();
  });

  const start = (ids: string[], extra: string[]): Promise<ClusterNodeProc[]> => {
    nodes = new ClusterNodes({ redisUrl: TEST_REDIS_URL, prefix, storeUrl: db.url, apiKey: KEY, extra });
    return Promise.all(ids.map((id) => nodes.start(id)));
  };
  const device = (url: string, clientId: string, ran: number[], reconnect: boolean) => {
    const closes: number[] = [];
    const d = new AipDeviceClient({
      url,
      token: KEY,
      clientId,
      platform: 'linux',
      reconnect: reconnect ? { initialDelayMs: 200, maxDelayMs: 500, maxRetries: 100 } : false,
      onCommand: async (cmd) => {
        const out = [];
        for (const a of cmd.actions ?? []) {
          ran.push((a.parameters as { i: number }).i);
          await new Promise((r) => setTimeout(r, 100));
          out.push({ status: 'success' as const, result: 'ok', call_id: a.call_id });
        }
        return out;
      },
    });
    d.on('error', () => undefined);
    d.on('disconnected', (info) => closes.push(info.code));
    closers.push(() => d.close());
    return { d, closes };
  };
  const controller = async (url: string, clientId: string, targetId: string) => {
    const c = new AipControllerClient({ url, token: KEY, clientId, targetId, reconnect: false });
    c.on('error', () => undefined);
    closers.push(() => c.close());
    await c.connect();
    const ends: ServerMessage[] = [];
    c.on('frame', (m) => {
      if (m.type === 'task_end') ends.push(m);
    });
    return { c, ends };
  };
  const listed = async (n: ClusterNodeProc, id: string): Promise<boolean> =>
    (await getJson<{ online_clients: string[] }>(n.http, '/api/clients', KEY)).body.online_clients.includes(
      id,
    );

  it('drains on SIGTERM: refuses new registrations (4020), lets the running task finish, then closes with 1001', async () => {
    const [a, b] = await start(['dr-a', 'dr-b'], []);
    const ran: number[] = [];
    const dev = device(b!.ws, 'dr-dev', ran, false);
    await dev.d.connect();
    await until(() => listed(a!, 'dr-dev'), 'a to list dr-dev');
    const r = await controller(a!.ws, 'dr-ctl', 'dr-dev');
    await r.c.requestTask({ request: planRequest(25, 'w'), sessionId: 'dr-s', taskName: 'dr_s' });
    await until(() => ran.length >= 2, 'the task to run');

    b!.proc.kill('SIGTERM');
    await until(async () => {
      const probe = await RawClient.connect(`${b!.ws}?token=${KEY}`).catch(() => null);
      if (!probe) return false;
      const reply = await probe.register('dr-late');
      const code = await probe.waitClose();
      await probe.close();
      if (reply.type !== 'error' || code !== CloseCode.CLUSTER_RETRY) return false;
      expect(reply.error).toBe(
        'Node dr-b is draining for a restart and takes no new registrations; connect to another node',
      );
      return true;
    }, 'a registration on the draining node to be refused');
    expect(dev.closes).toEqual([]);

    await until(() => r.ends.length === 1, 'the task to finish during the drain', 30_000);
    expect(r.ends[0]).toMatchObject({ status: 'completed', session_id: 'dr-s' });
    expect(ran).toHaveLength(25);
    expect(await b!.exit).toBe(0);
    expect(dev.closes).toEqual([CloseCode.GOING_AWAY]);
  }, 60_000);

  it('fences a node SIGSTOPped past its lease: its task is resumed once, by the node that owns it now', async () => {
    const [a, b] = await start(
      ['st-a', 'st-b'],
      ['--cluster-lease-ms', '2000', '--cluster-heartbeat-ms', '500', '--resume-grace-ms', '20000'],
    );
    const ran: number[] = [];
    const dev = device(b!.ws, 'st-dev', ran, true);
    await dev.d.connect();
    await until(() => listed(a!, 'st-dev'), 'a to list st-dev');
    const r = await controller(a!.ws, 'st-ctl', 'st-dev');
    const STEPS = 30;
    await r.c.requestTask({ request: planRequest(STEPS, 'w'), sessionId: 'st-s', taskName: 'st_s' });
    await until(() => ran.length >= 3, 'the task to run');

    b!.proc.kill('SIGSTOP');
    await until(
      async () =>
        (await getJson<{ status: string }>(a!.http, '/sessions/st-s', KEY)).body.status === 'crashed',
      'node a to mark the stopped node’s task crashed',
      20_000,
    );
    b!.proc.kill('SIGCONT');

    await until(() => r.ends.length === 1, 'the task to end after the fence', 60_000);
    expect(r.ends[0], String(r.ends[0]!.error)).toMatchObject({ status: 'completed', session_id: 'st-s' });
    expect(dev.closes).toContain(CloseCode.GOING_AWAY);
    const { body } = await getJson<{ status_history: { status: string }[]; managed_by?: string }>(
      a!.http,
      '/sessions/st-s',
      KEY,
    );
    expect(body.status_history.map((h) => h.status)).toEqual(['active', 'crashed', 'active', 'completed']);
    const counts = new Map<number, number>();
    for (const i of ran) counts.set(i, (counts.get(i) ?? 0) + 1);
    for (let i = 0; i < STEPS; i++) expect(counts.get(i), `step ${i}`).toBeGreaterThanOrEqual(1);
    await new Promise((res) => setTimeout(res, 1_000));
    expect(r.ends).toHaveLength(1);
  }, 90_000);
});
