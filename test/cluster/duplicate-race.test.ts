/**
 * 1,000 registrations of one client_id at once on two real node processes (500 each): exactly one wins, every
 * other gets UFO's duplicate text and close 4002 (or 4020, "retry", when a node refused for a cluster reason:
 * counted apart, and none in a healthy run). The winner's connection stays open and usable, and both nodes list
 * the id once, on the winner's node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode, type ServerMessage } from '../../protocol/index.js';
import { RawClient } from '../helpers/raw-client.js';
import { NODE_KEY, NodeProcesses, type NodeProcess } from './node-processes.js';

const PER_NODE = 500;
const CLIENT_ID = 'race-dev';
const DUPLICATE_TEXT = `client_id '${CLIENT_ID}' is already registered; duplicate registrations are not allowed`;

describe('1,000 registrations of one client_id at once on two node processes', () => {
  let cluster: NodeProcesses;
  const sockets: RawClient[] = [];

  beforeAll(async () => {
    cluster = await NodeProcesses.start();
  });
  afterAll(async () => {
    await Promise.all(sockets.splice(0).map((c) => c.close().catch(() => undefined)));
    await cluster?.dispose();
  });

  it('lets exactly one win; the rest get the duplicate error and 4002; the winner stays usable', async () => {
    const nodes = await Promise.all(['r1', 'r2'].map((id) => cluster.node(id)));
    // Open every socket first (alternating nodes), then send every register in one synchronous burst.
    const socketNode = new Map<RawClient, NodeProcess>();
    const BATCH = 100;
    for (let i = 0; i < 2 * PER_NODE; i += BATCH) {
      const batch = await Promise.all(
        Array.from({ length: BATCH }, (_, j) => {
          const node = nodes[j % 2]!;
          return RawClient.connect(`${node.wsUrl}?token=${NODE_KEY}`).then((c) => {
            socketNode.set(c, node);
            return c;
          });
        }),
      );
      sockets.push(...batch);
    }
    expect(sockets).toHaveLength(2 * PER_NODE);
    for (const c of sockets)
      c.send({ type: 'register', status: 'ok', client_type: 'device', client_id: CLIENT_ID });
    const replies = await Promise.all(sockets.map((c) => c.next(() => true, 60_000, 0)));

    const winners = sockets.filter((_, i) => replies[i]!.type === 'heartbeat');
    const losers = sockets.filter((_, i) => replies[i]!.type !== 'heartbeat');
    expect(winners).toHaveLength(1);
    expect(replies.filter((r) => r.type === 'heartbeat')[0]).toMatchObject({ status: 'ok' });
    const codes = await Promise.all(losers.map((c) => c.waitClose(60_000)));
    const retry = losers.filter((_, i) => codes[i] === CloseCode.CLUSTER_RETRY);
    const duplicate = losers.filter((_, i) => codes[i] === CloseCode.DUPLICATE_CLIENT_ID);
    const perNode = (list: RawClient[], id: string): number =>
      list.filter((c) => socketNode.get(c)!.id === id).length;
    console.log(
      `[duplicate race] 1 winner on ${socketNode.get(winners[0]!)!.id}; ${duplicate.length} refused as duplicates ` +
        `(r1 ${perNode(duplicate, 'r1')}, r2 ${perNode(duplicate, 'r2')}); ${retry.length} refused with 4020`,
    );
    expect(retry).toHaveLength(0);
    expect(duplicate).toHaveLength(2 * PER_NODE - 1);
    // Both nodes refused their share: the race ran across nodes, not on one.
    expect(perNode(duplicate, 'r1')).toBeGreaterThan(0);
    expect(perNode(duplicate, 'r2')).toBeGreaterThan(0);
    for (const c of losers) {
      const errors = c.ofType('error');
      expect(errors.map((m: ServerMessage) => m.error)).toEqual([DUPLICATE_TEXT]);
    }

    // The winner: still open, answers a heartbeat, and listed once on both nodes.
    const winner = winners[0]!;
    expect(winner.closeCode).toBeNull();
    const from = winner.frames.length;
    winner.send({ type: 'heartbeat', status: 'ok', client_type: 'device', client_id: CLIENT_ID });
    expect(await winner.next((m) => m.type === 'heartbeat', 30_000, from)).toMatchObject({ status: 'ok' });
    for (const n of nodes) {
      const { body } = await cluster.get(n, '/api/clients');
      expect((body as { online_clients: string[] }).online_clients).toEqual([CLIENT_ID]);
    }
    const entry = await (await cluster.client()).hget(`${cluster.prefix}dir`, CLIENT_ID);
    expect(JSON.parse(entry!)).toMatchObject({ n: socketNode.get(winner)!.id });
    expect(winner.closeCode).toBeNull();
  }, 180_000);
});
