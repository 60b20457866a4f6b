/**
 * Operations in a cluster (one real node on the shared Redis under a fresh prefix, PostgreSQL store): /readyz checks
 * Redis too, every aipd series carries the `node` label, the pub/sub probe reports a bus lag, and /clients names
 * the node of each client.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExposition, valueOf } from '../../src/lib/prom-text.js';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { RawClient } from '../helpers/raw-client.js';
import { connectRedis, deletePrefix, TEST_REDIS_URL, testPrefix } from '../helpers/redis.js';

describe('operations of a cluster node', () => {
  let db: TestDatabase;
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let client: RawClient;
  let base: string;
  const prefix = testPrefix();
  const dataDir = mkdtempSync(join(tmpdir(), 'aipd-ops-cluster-'));

  beforeAll(async () => {
    db = await createTestDatabase();
    server = await startTestServer({
      store: db.url,
      dataDir,
      nodeId: 'node-m',
      cluster: TEST_REDIS_URL,
      clusterPrefix: prefix,
      clusterProbeMs: 100,
    });
    base = `http://127.0.0.1:${server.port}`;
    client = await RawClient.connect(server.url);
    await client.register('dev-c');
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
    const redis = await connectRedis();
    await deletePrefix(redis, prefix);
    await redis.quit();
    await db?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('/readyz reports the store and Redis', async () => {
    const r = await fetch(`${base}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ready', checks: { store: true, redis: true } });
  });

  it('labels every series with the node and reports the Redis bus lag', async () => {
    const scrape = async () =>
      parseExposition(await (await fetch(`${base}/metrics`, { headers: { 'x-api-key': TEST_KEY } })).text());
    await expect
      .poll(async () => (await scrape()).samples.some((s) => s.name === 'aipd_cluster_bus_lag_seconds'), {
        timeout: 5000,
      })
      .toBe(true);
    const m = await scrape();
    expect(valueOf(m, 'aipd_connections', { node: 'node-m', role: 'device', codec: 'json' })).toBe(1);
    const lag = valueOf(m, 'aipd_cluster_bus_lag_seconds', { node: 'node-m' });
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(5);
    const aipd = m.samples.filter((s) => s.name.startsWith('aipd_'));
    expect(aipd.length).toBeGreaterThan(5);
    expect(aipd.every((s) => s.labels.node === 'node-m')).toBe(true);
  });

  it('/clients names the node of each client', async () => {
    const r = await fetch(`${base}/clients`, { headers: { 'x-api-key': TEST_KEY } });
    expect(((await r.json()) as { clients: unknown[] }).clients).toEqual([
      expect.objectContaining({ client_id: 'dev-c', client_type: 'device', node: 'node-m' }),
    ]);
  });
});
