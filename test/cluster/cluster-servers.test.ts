/**
 * `--cluster`: two real aipd servers on one Redis (a fresh key prefix) and one throwaway PostgreSQL database.
 * A client_id registered on node A is refused on node B with UFO's text and close code, the original connection
 * untouched; `/api/clients` and `/api/health` on either node list both nodes' clients; a node that stops gives
 * its ids back at once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode } from '../../protocol/index.js';
import { RedisClientDirectory } from '../../src/state/redis-client-directory.js';
import { TEST_KEY } from '../helpers/aip-server.js';
import { RawClient } from '../helpers/raw-client.js';
import { waitFor } from '../helpers/redis.js';
import { InProcessNodes, type NodeServer as Server } from './in-process-nodes.js';

async function clientsOf(server: Server, path: '/api/clients' | '/api/health'): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, { headers: { 'X-API-Key': TEST_KEY } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { online_clients: string[] }).online_clients;
}

describe('aipd --cluster', () => {
  let nodes: InProcessNodes;
  const clients: RawClient[] = [];

  const node = (nodeId: string): Promise<Server> => nodes.node(nodeId);
  const connect = async (s: Server): Promise<RawClient> => {
    const c = await RawClient.connect(s.url);
    clients.push(c);
    return c;
  };

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

  it("refuses on node B an id registered on node A, with UFO's error, leaving A's connection untouched", async () => {
    const a = await node('node-a');
    const b = await node('node-b');
    expect(a.cluster?.nodeId).toBe('node-a');
    expect(a.registry).toBeInstanceOf(RedisClientDirectory);
    const first = await connect(a);
    expect(await first.register('dev-1')).toMatchObject({ type: 'heartbeat', status: 'ok' });
    const dup = await connect(b);
    expect(await dup.register('dev-1')).toMatchObject({
      type: 'error',
      error: "client_id 'dev-1' is already registered; duplicate registrations are not allowed",
    });
    expect(await dup.waitClose()).toBe(CloseCode.DUPLICATE_CLIENT_ID);
    expect(a.registry.get('dev-1')?.conn.closed).toBe(false);
    first.send({ type: 'heartbeat', status: 'ok', client_id: 'dev-1' });
    expect(await first.next((m) => m.type === 'heartbeat')).toMatchObject({ status: 'ok' });
  });

  it("lists every node's clients on /api/clients and /api/health of any node", async () => {
    const a = await node('node-a');
    const b = await node('node-b');
    await (await connect(a)).register('dev-a');
    await (await connect(b)).register('dev-b');
    for (const s of [a, b]) await waitFor('both clients', () => s.registry.stats().total === 2);
    for (const s of [a, b]) {
      expect(await clientsOf(s, '/api/clients')).toEqual(['dev-a', 'dev-b']);
      expect(await clientsOf(s, '/api/health')).toEqual(['dev-a', 'dev-b']);
    }
  });

  it('gives its ids back when it stops, so they register on another node at once', async () => {
    const a = await node('node-a');
    const b = await node('node-b');
    await (await connect(a)).register('dev-1');
    await a.close();
    expect(await (await connect(b)).register('dev-1')).toMatchObject({ type: 'heartbeat', status: 'ok' });
  });
});
