/**
 * `--cluster redis://…`: this node's membership of a cluster — three Redis connections (commands, the
 * directory's pub/sub, the bus inbox's blocking reads), the node lease, the cluster-wide client directory, the
 * cross-node bus and the reaper of dead nodes — and what the node does when the lease says so:
 *
 * - fenced (paused past its lease): the directory has closed every local socket (1001); the node joins again
 *   with a new incarnation, retrying every heartbeat while Redis cannot be reached. Devices reconnect.
 * - reset (Redis lost its data): the node joins again and registers its live clients again; an id another
 *   node took meanwhile closes as a duplicate.
 *
 * The command connection has no offline queue: while Redis is down a registration fails at once with
 * CLUSTER_UNAVAILABLE (retryable) instead of waiting in an unbounded queue.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import type { SharedAliases } from '../records/task-results.js';
import { RedisClientDirectory } from '../state/redis-client-directory.js';
import { ClusterBus } from '../cluster/bus.js';
import { clusterKeys } from '../cluster/keys.js';
import { NodeLease } from '../cluster/node-lease.js';
import { NodeReaper } from '../cluster/reaper.js';

export interface ClusterNodeOptions {
  readonly url: string;
  readonly prefix: string;
  readonly nodeId: string;
  readonly leaseMs: number;
  readonly heartbeatMs: number;
  readonly resyncMs: number;
  readonly inboxMaxLen: number;
  readonly busQueueBytes: number;
  readonly busBlockMs: number;
  readonly log: Logger;
}

export class ClusterNode {
  private closed = false;
  private rejoinTimer: NodeJS.Timeout | null = null;
  private rejoining: Promise<void> | null = null;

  private constructor(
    readonly lease: NodeLease,
    readonly directory: RedisClientDirectory,
    /** The cross-node bus (started by the server once it can handle what arrives). */
    readonly bus: ClusterBus,
    /** Finds dead nodes (started by the server with what to do about one). */
    readonly reaper: NodeReaper,
    private readonly commands: Redis,
    private readonly subscriber: Redis,
    private readonly reader: Redis,
    private readonly opts: ClusterNodeOptions,
    private readonly log: Logger,
  ) {
    lease.onFenced(() => this.rejoin(false));
    lease.onReset(() => this.rejoin(true));
  }

  /** Connects, joins and starts the directory. Throws (closing what it opened) when Redis cannot be reached. */
  static async start(opts: ClusterNodeOptions): Promise<ClusterNode> {
    const log = opts.log.child({ component: 'cluster', node: opts.nodeId });
    const connect = (name: string, offlineQueue: boolean): Redis => {
      const r = new Redis(opts.url, {
        lazyConnect: true,
        enableOfflineQueue: offlineQueue,
        maxRetriesPerRequest: 1,
        connectionName: `aipd:${opts.nodeId}:${name}`,
      });
      let down = false;
      r.on('error', (err: Error) => {
        if (!down) log.warn({ err: err.message, connection: name }, 'cluster Redis unreachable; retrying');
        down = true;
      });
      r.on('ready', () => {
        if (down) log.info({ connection: name }, 'cluster Redis reachable again');
        down = false;
      });
      return r;
    };
    const commands = connect('commands', false);
    const subscriber = connect('directory', true);
    const reader = connect('inbox', true);
    try {
      await Promise.all([commands.connect(), subscriber.connect(), reader.connect()]);
      const keys = clusterKeys(opts.prefix);
      const lease = new NodeLease({
        redis: commands,
        keys,
        nodeId: opts.nodeId,
        leaseMs: opts.leaseMs,
        heartbeatMs: opts.heartbeatMs,
        log,
      });
      await lease.join();
      const directory = new RedisClientDirectory({
        redis: commands,
        subscriber,
        keys,
        lease,
        resyncMs: opts.resyncMs,
        log,
      });
      await directory.start();
      const bus = new ClusterBus({
        redis: commands,
        reader,
        keys,
        lease,
        maxLen: opts.inboxMaxLen,
        maxQueuedBytes: opts.busQueueBytes,
        blockMs: opts.busBlockMs,
        log,
      });
      const reaper = new NodeReaper({
        redis: commands,
        keys,
        lease,
        intervalMs: opts.heartbeatMs,
        claimMs: 10 * opts.leaseMs,
        log,
      });
      return new ClusterNode(lease, directory, bus, reaper, commands, subscriber, reader, opts, log);
    } catch (err) {
      commands.disconnect();
      subscriber.disconnect();
      reader.disconnect();
      throw err;
    }
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }

  /** Dispatch aliases in Redis, kept `ttlMs`: a dispatch id made on any node resolves on every node. */
  aliases(ttlMs: number): SharedAliases {
    const keys = clusterKeys(this.opts.prefix);
    const redis = this.commands;
    return {
      set: async (alias, taskName) => {
        // Redis away: this node still resolves it (its cache); other nodes answer `pending` until it is back.
        await redis.set(keys.alias(alias), taskName, 'PX', ttlMs).catch((err: unknown) => {
          this.log.warn({ err, alias }, 'could not share a dispatch id with the cluster');
        });
      },
      get: async (alias) => (await redis.get(keys.alias(alias)).catch(() => null)) ?? undefined,
    };
  }

  /** Stops the directory, gives the lease up (other nodes see this node gone at once) and disconnects. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.rejoinTimer) clearTimeout(this.rejoinTimer);
    await this.rejoining?.catch(() => undefined);
    await this.reaper.stop();
    await this.bus.stop();
    await this.directory.stop();
    await this.lease.leave().catch((err: unknown) => this.log.warn({ err }, 'could not give the lease up'));
    await Promise.all([this.commands, this.subscriber].map((r) => r.quit().catch(() => r.disconnect())));
    this.reader.disconnect();
  }

  private rejoin(reclaim: boolean): void {
    if (this.closed || this.rejoining) return;
    this.rejoining = (async () => {
      await this.lease.join();
      if (reclaim) {
        const kept = await this.directory.reclaimLocal();
        this.log.info({ kept }, 'registered live clients again after Redis lost its data');
      }
    })()
      .catch((err: unknown) => {
        this.log.warn({ err }, 'could not rejoin the cluster; retrying');
        this.rejoinTimer = setTimeout(() => {
          this.rejoinTimer = null;
          this.rejoin(reclaim);
        }, this.opts.heartbeatMs);
        this.rejoinTimer.unref();
      })
      .finally(() => (this.rejoining = null));
  }
}
