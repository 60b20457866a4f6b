/**
 * A real aipd cluster node paused past its lease (its renewal timer suspended, then resumed — what SIGSTOP and
 * SIGCONT do to the process): it reports fenced instead of renewing, closes its clients' sockets with 1001, joins
 * again with a new incarnation on its own, and its clients can register again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode } from '../../protocol/index.js';
import { clusterKeys } from '../../src/cluster/keys.js';
import { startTestServer } from '../helpers/aip-server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { RawClient } from '../helpers/raw-client.js';
import { connectRedis, deletePrefix, TEST_REDIS_URL, testPrefix, waitFor } from '../helpers/redis.js';

describe('aipd --cluster node paused past its lease', () => {
  let db: TestDatabase;
  let dataDir: string;
  const prefix = testPrefix();
  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = mkdtempSync(join(tmpdir(), 'aipd-fence-'));
  });
  afterAll(async () => {
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('is fenced: drops its sockets (1001) and rejoins with a new incarnation', async () => {
    const server = await startTestServer({
      store: db.url,
      dataDir,
      nodeId: 'node-a',
      cluster: TEST_REDIS_URL,
      clusterPrefix: prefix,
      clusterLeaseMs: 1_000,
      clusterHeartbeatMs: 100,
    });
    const redis = await connectRedis();
    const clients: RawClient[] = [];
    try {
      const cluster = server.cluster!;
      const first = await RawClient.connect(server.url);
      clients.push(first);
      expect(await first.register('dev-1')).toMatchObject({ type: 'heartbeat', status: 'ok' });
      const before = cluster.lease.incarnation;
      cluster.lease.suspend();
      const leaseKey = clusterKeys(prefix).node('node-a');
      await waitFor('the lease to expire', async () => (await redis.exists(leaseKey)) === 0);
      expect(await cluster.lease.resume()).toBe('fenced');
      expect(await first.waitClose()).toBe(CloseCode.GOING_AWAY);
      await waitFor('the node to rejoin', () => cluster.lease.state === 'live');
      expect(cluster.lease.incarnation).not.toBe(before);
      expect(await redis.get(leaseKey)).toBe(cluster.lease.incarnation);
      const again = await RawClient.connect(server.url);
      clients.push(again);
      expect(await again.register('dev-1')).toMatchObject({ type: 'heartbeat', status: 'ok' });
      expect(server.registry.list()).toEqual(['dev-1']);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await server.close();
      await deletePrefix(redis, prefix);
      await redis.quit();
    }
  });
});
