/**
 * In-process cluster nodes for a test file: each a real aipd (`startTestServer`, port 0) on one throwaway
 * PostgreSQL database and the shared test Redis under a fresh key prefix, with a data dir of its own.
 *
 *   const nodes = await InProcessNodes.create();   // beforeAll
 *   const a = await nodes.node('a', { drainTimeoutMs: 100 });
 *   await nodes.reset();                            // afterEach: close the nodes, delete the prefix's keys
 *   await nodes.dispose();                          // afterAll: also drop the database and the data dirs
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerConfigInput } from '../../src/config.js';
import { startTestServer } from '../helpers/aip-server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { connectRedis, deletePrefix, TEST_REDIS_URL, testPrefix } from '../helpers/redis.js';

export type NodeServer = Awaited<ReturnType<typeof startTestServer>>;

export class InProcessNodes {
  readonly prefix = testPrefix();
  private readonly servers: NodeServer[] = [];
  private readonly dirs: string[] = [];

  private constructor(readonly db: TestDatabase) {}

  static async create(): Promise<InProcessNodes> {
    return new InProcessNodes(await createTestDatabase());
  }

  /** Starts node `nodeId` of this cluster; `config` adds to (or overrides) the cluster settings. */
  async node(nodeId: string, config: ServerConfigInput = {}): Promise<NodeServer> {
    const dataDir = mkdtempSync(join(tmpdir(), `aipd-${nodeId}-`));
    this.dirs.push(dataDir);
    const s = await startTestServer({
      store: this.db.url,
      dataDir,
      nodeId,
      cluster: TEST_REDIS_URL,
      clusterPrefix: this.prefix,
      ...config,
    });
    this.servers.push(s);
    return s;
  }

  /** Closes every node started so far and deletes the prefix's keys from Redis. */
  async reset(): Promise<void> {
    for (const s of this.servers.splice(0)) await s.close();
    const redis = await connectRedis();
    try {
      await deletePrefix(redis, this.prefix);
    } finally {
      await redis.quit();
    }
  }

  /** reset(), then drops the database and removes the data dirs. */
  async dispose(): Promise<void> {
    try {
      await this.reset();
    } finally {
      await this.db.drop();
      for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    }
  }
}
