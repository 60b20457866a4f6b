/**
 * Test nodes of a cluster on the shared Redis: each `TestNode` has its own connections, lease and directory,
 * as a real aipd node would. `ClusterKit` owns a fresh key prefix and frees everything it made.
 */
import type { Redis } from 'ioredis';
import { clusterKeys, type ClusterKeys } from '../../src/cluster/keys.js';
import { NodeLease } from '../../src/cluster/node-lease.js';
import { silentLogger } from '../../src/logger.js';
import { RedisClientDirectory } from '../../src/state/redis-client-directory.js';
import type { RemoteSender } from '../../src/state/redis/remote-link.js';
import { connectRedis, deletePrefix, testPrefix } from '../helpers/redis.js';

export interface NodeKnobs {
  leaseMs?: number;
  heartbeatMs?: number;
  resyncMs?: number;
  remoteSender?: RemoteSender;
}

export interface TestNode {
  readonly id: string;
  readonly redis: Redis;
  readonly lease: NodeLease;
  readonly dir: RedisClientDirectory;
}

export class ClusterKit {
  readonly prefix = testPrefix();
  readonly keys: ClusterKeys = clusterKeys(this.prefix);
  private readonly conns: Redis[] = [];
  private readonly nodes: TestNode[] = [];
  private readonly leases: NodeLease[] = [];
  private admin: Redis | null = null;

  /** A connection for the test's own reads. */
  async redis(): Promise<Redis> {
    this.admin ??= await this.connect();
    return this.admin;
  }

  /** A lease on its own connection, not joined. */
  async lease(id: string, knobs: NodeKnobs = {}): Promise<NodeLease> {
    const lease = new NodeLease({
      redis: await this.connect(),
      keys: this.keys,
      nodeId: id,
      leaseMs: knobs.leaseMs ?? 10_000,
      heartbeatMs: knobs.heartbeatMs ?? 2_500,
      log: silentLogger(),
    });
    this.leases.push(lease);
    return lease;
  }

  /** A joined node with a started directory. */
  async node(id: string, knobs: NodeKnobs = {}): Promise<TestNode> {
    const redis = await this.connect();
    const lease = new NodeLease({
      redis,
      keys: this.keys,
      nodeId: id,
      leaseMs: knobs.leaseMs ?? 10_000,
      heartbeatMs: knobs.heartbeatMs ?? 2_500,
      log: silentLogger(),
    });
    await lease.join();
    const dir = new RedisClientDirectory({
      redis,
      subscriber: await this.connect(),
      keys: this.keys,
      lease,
      resyncMs: knobs.resyncMs ?? 5_000,
      remoteSender: knobs.remoteSender,
      log: silentLogger(),
    });
    await dir.start();
    const node = { id, redis, lease, dir };
    this.nodes.push(node);
    return node;
  }

  /** Stops every node, deletes every key under the prefix and quits every connection. */
  async dispose(): Promise<void> {
    for (const n of this.nodes) {
      await n.dir.stop();
      await n.lease.leave().catch(() => undefined);
    }
    for (const l of this.leases) await l.leave().catch(() => undefined);
    const admin = await this.redis();
    await deletePrefix(admin, this.prefix);
    await Promise.all(this.conns.map((c) => c.quit().catch(() => c.disconnect())));
  }

  private async connect(): Promise<Redis> {
    const c = await connectRedis();
    this.conns.push(c);
    return c;
  }
}
