/**
 * Dead nodes: every live node looks, every `intervalMs`, for nodes of the `{p}nodes` ZSET whose lease has
 * expired (a `kill -9`, a crash, a network cut). One node reaps each death: it claims `{p}reap:<node>:<last
 * heartbeat>` with SET NX, runs `onDead` (the server marks the dead node's sessions crashed in the store), then
 * drops the node from the ZSET and deletes its inbox. If `onDead` fails, the claim is given back and another pass
 * (on any node) tries again. A node that left gracefully removed itself from the ZSET and is never reaped.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import type { ClusterKeys } from './keys.js';
import { listNodes, type NodeInfo, type NodeLease } from './node-lease.js';

export interface NodeReaperOptions {
  readonly redis: Redis;
  readonly keys: ClusterKeys;
  readonly lease: NodeLease;
  /** Time between looks (the heartbeat interval: a death is seen within lease + heartbeat). */
  readonly intervalMs: number;
  /** How long a reap claim is kept (so a slow reaper is not raced). */
  readonly claimMs: number;
  readonly log: Logger;
}

/** Called once per dead node, cluster-wide. */
export type DeadNodeHandler = (nodeId: string, lastHeartbeatMs: number) => Promise<void>;

export class NodeReaper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private onDead: DeadNodeHandler | null = null;
  private onLook: ((nodes: readonly NodeInfo[]) => void) | null = null;
  private readonly log: Logger;

  constructor(private readonly opts: NodeReaperOptions) {
    this.log = opts.log.child({ component: 'reaper' });
  }

  /** Also tells `fn` the cluster's nodes at each look (every live node looks, so every node hears of a death). */
  watch(fn: (nodes: readonly NodeInfo[]) => void): void {
    this.onLook = fn;
  }

  start(onDead: DeadNodeHandler): void {
    this.onDead = onDead;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.onDead = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  /** One look now; resolves with the nodes this node reaped. */
  async tick(): Promise<string[]> {
    const reaped: string[] = [];
    const { redis, keys, lease } = this.opts;
    if (lease.state !== 'live' || !this.onDead) return reaped;
    const nodes = await listNodes(redis, keys);
    try {
      this.onLook?.(nodes);
    } catch (err) {
      this.log.error({ err }, 'node watcher failed');
    }
    for (const n of nodes) {
      if (n.incarnation !== null || n.nodeId === lease.nodeId) continue;
      const claim = keys.reap(n.nodeId, String(n.lastHeartbeatMs));
      const won = await redis.set(claim, lease.nodeId, 'PX', this.opts.claimMs, 'NX');
      if (won !== 'OK') continue;
      this.log.warn({ dead: n.nodeId, last_heartbeat_ms: n.lastHeartbeatMs }, 'node lease expired: reaping');
      try {
        await this.onDead(n.nodeId, n.lastHeartbeatMs);
      } catch (err) {
        this.log.error({ err, dead: n.nodeId }, 'reaping a dead node failed; will retry');
        await redis.del(claim).catch(() => undefined);
        continue;
      }
      // Only if it did not come back meanwhile (a rejoin scores it again).
      await redis.zrem(keys.nodes, n.nodeId);
      const back = await redis.exists(keys.node(n.nodeId));
      if (back) await redis.zadd(keys.nodes, Date.now(), n.nodeId);
      else await redis.del(keys.inbox(n.nodeId));
      reaped.push(n.nodeId);
    }
    return reaped;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.tick()
        .then(() => undefined)
        .catch((err: unknown) => this.log.warn({ err }, 'reaper pass failed; will retry'))
        .finally(() => {
          this.running = null;
          if (this.onDead) this.schedule();
        });
    }, this.opts.intervalMs);
    this.timer.unref();
  }
}
