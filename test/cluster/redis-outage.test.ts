/**
 * A cluster node whose Redis dies and comes back empty (a private redis-server, SIGKILLed and restarted): while
 * it is down a new registration gets CLUSTER_UNAVAILABLE and close 4020 (retry), and a client registered before
 * stays connected; once it is back the node notices the lost epoch, joins again and registers its live client
 * again, and new registrations work.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode } from '../../protocol/index.js';
import { clusterKeys } from '../../src/cluster/keys.js';
import { startTestServer } from '../helpers/aip-server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { RawClient } from '../helpers/raw-client.js';
import { PrivateRedis, waitFor } from '../helpers/redis.js';

describe('aipd --cluster when Redis dies and restarts empty', () => {
  let db: TestDatabase;
  let redis: PrivateRedis;
  let dataDir: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    redis = await PrivateRedis.start();
    dataDir = mkdtempSync(join(tmpdir(), 'aipd-outage-'));
  });
  afterAll(async () => {
    await redis.kill();
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses new registrations with a retryable error while down, keeps local clients, and re-registers them after', async () => {
    const server = await startTestServer({
      store: db.url,
      dataDir,
      nodeId: 'node-a',
      cluster: redis.url,
      clusterLeaseMs: 1_000,
      clusterHeartbeatMs: 100,
      clusterResyncMs: 200,
    });
    const clients: RawClient[] = [];
    const check = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    check.on('error', () => undefined);
    try {
      const keep = await RawClient.connect(server.url);
      clients.push(keep);
      expect(await keep.register('dev-keep')).toMatchObject({ type: 'heartbeat', status: 'ok' });

      await redis.kill();
      const refused = await RawClient.connect(server.url);
      clients.push(refused);
      const reply = await refused.register('dev-new');
      expect(reply.type).toBe('error');
      expect(reply.error).toMatch(/^The cluster directory is unavailable \(.*\); retry$/);
      expect(await refused.waitClose()).toBe(CloseCode.CLUSTER_RETRY);
      keep.send({ type: 'heartbeat', status: 'ok', client_id: 'dev-keep' });
      expect(await keep.next((m) => m.type === 'heartbeat')).toMatchObject({ status: 'ok' });

      await redis.restart();
      await check.connect();
      const keys = clusterKeys('aipd:');
      await waitFor(
        'dev-keep registered again',
        async () => (await check.hexists(keys.dir, 'dev-keep')) === 1,
      );
      expect(JSON.parse((await check.hget(keys.dir, 'dev-keep'))!)).toMatchObject({
        n: 'node-a',
        i: await check.get(keys.node('node-a')),
      });
      expect(server.registry.get('dev-keep')?.conn.closed).toBe(false);
      const fresh = await RawClient.connect(server.url);
      clients.push(fresh);
      expect(await fresh.register('dev-new')).toMatchObject({ type: 'heartbeat', status: 'ok' });
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await server.close();
      check.disconnect();
    }
  });
});
