/**
 * A cluster node's own lifecycle, with real node processes, a private redis-server and a throwaway PostgreSQL
 * database:
 *
 * - SIGTERM (graceful drain): new registrations there are refused with CLUSTER_DRAINING and close 4020; the
 *   running task finishes and its requester (on another node) gets `task_end` completed; then the device's socket
 *   closes with 1001 and the process exits 0.
 * - SIGSTOP past the lease, then SIGCONT: the other nodes mark its task crashed; on waking the node is fenced — it
 *   gives its session up without writing, closes its sockets with 1001 and joins again — and the device, back
 *   on it, resumes the task there; the requester gets exactly one `task_end`, completed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CloseCode, type ServerMessage } from '../../protocol/index.js';
import { AipControllerClient, AipDeviceClient } from '../../src/client/index.js';
import { planRequest } from '../helpers/aip-server.js';
import { until } from '../helpers/process.js';
import { NODE_KEY as KEY, NodeProcesses, type NodeProcess } from './node-processes.js';
import { RawClient } from '../helpers/raw-client.js';

describe('cluster node lifecycle (real processes)', () => {
  let cluster: NodeProcesses | null = null;
  const closers: (() => Promise<void>)[] = [];

  afterEach(async () => {
    await Promise.all(closers.splice(0).map((c) => c().catch(() => undefined)));
    await cluster?.dispose();
    cluster = null;
  });

  const start = async (ids: string[], extra: string[]): Promise<NodeProcess[]> => {
    cluster = await NodeProcesses.start();
    const c = cluster;
    return Promise.all(ids.map((id) => c.node(id, extra)));
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
  const listed = async (n: NodeProcess, id: string): Promise<boolean> =>
    (await cluster!.get<{ online_clients: string[] }>(n, '/api/clients')).body.online_clients.includes(id);

  it('drains on SIGTERM: refuses new registrations (4020), lets the running task finish, then closes with 1001', async () => {
    const [a, b] = await start(['dr-a', 'dr-b'], []);
    const ran: number[] = [];
    const dev = device(b!.wsUrl, 'dr-dev', ran, false);
    await dev.d.connect();
    await until(() => listed(a!, 'dr-dev'), 'a to list dr-dev');
    const r = await controller(a!.wsUrl, 'dr-ctl', 'dr-dev');
    await r.c.requestTask({ request: planRequest(25, 'w'), sessionId: 'dr-s', taskName: 'dr_s' });
    await until(() => ran.length >= 2, 'the task to run');

    b!.proc.kill('SIGTERM');
    await until(async () => {
      const probe = await RawClient.connect(`${b!.wsUrl}?token=${KEY}`).catch(() => null);
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
    const dev = device(b!.wsUrl, 'st-dev', ran, true);
    await dev.d.connect();
    await until(() => listed(a!, 'st-dev'), 'a to list st-dev');
    const r = await controller(a!.wsUrl, 'st-ctl', 'st-dev');
    const STEPS = 30;
    await r.c.requestTask({ request: planRequest(STEPS, 'w'), sessionId: 'st-s', taskName: 'st_s' });
    await until(() => ran.length >= 3, 'the task to run');

    b!.proc.kill('SIGSTOP');
    await until(
      async () => (await cluster!.get<{ status: string }>(a!, '/sessions/st-s')).body.status === 'crashed',
      'node a to mark the stopped node’s task crashed',
      20_000,
    );
    b!.proc.kill('SIGCONT');

    await until(() => r.ends.length === 1, 'the task to end after the fence', 60_000);
    expect(r.ends[0], String(r.ends[0]!.error)).toMatchObject({ status: 'completed', session_id: 'st-s' });
    expect(dev.closes).toContain(CloseCode.GOING_AWAY);
    const { body } = await cluster!.get<{ status_history: { status: string }[]; managed_by?: string }>(
      a!,
      '/sessions/st-s',
    );
    expect(body.status_history.map((h) => h.status)).toEqual(['active', 'crashed', 'active', 'completed']);
    const counts = new Map<number, number>();
    for (const i of ran) counts.set(i, (counts.get(i) ?? 0) + 1);
    for (let i = 0; i < STEPS; i++) expect(counts.get(i), `step ${i}`).toBeGreaterThanOrEqual(1);
    await new Promise((res) => setTimeout(res, 1_000));
    expect(r.ends).toHaveLength(1);
  }, 90_000);
});
