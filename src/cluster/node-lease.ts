/**
 * Node liveness in a cluster: a lease per node, not per device, so heartbeat traffic grows with nodes only.
 *
 * `join()` takes `{p}node:<id>` = a fresh incarnation with a TTL of `leaseMs`, and renews it every
 * `heartbeatMs` (a chain of timers, never two renewals at once). Every renewal also scores the node in the
 * `{p}nodes` ZSET and reads the cluster epoch. A renewal that finds the lease gone or held by another
 * incarnation means this node was paused (SIGSTOP, a long GC, a VM freeze) past its lease: other nodes may
 * already have taken its clients. It never renews silently: the lease becomes `fenced`, the heartbeat stops, and
 * `onFenced` listeners are told, so the server drops its sockets and joins again with a new incarnation. A
 * renewal that finds the epoch gone means Redis lost its data: the lease becomes `reset` and `onReset`
 * listeners rejoin and register their live clients again. While Redis is unreachable the lease keeps trying.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import type { ClusterKeys } from './keys.js';
import { JOIN_SCRIPT, LEAVE_SCRIPT, RENEW_SCRIPT } from './lease-scripts.js';
import { LuaScript } from './lua.js';

const JOIN = new LuaScript('join', JOIN_SCRIPT);
const RENEW = new LuaScript('renew', RENEW_SCRIPT);
const LEAVE = new LuaScript('leave', LEAVE_SCRIPT);

export interface NodeLeaseOptions {
  readonly redis: Redis;
  readonly keys: ClusterKeys;
  readonly nodeId: string;
  /** `clusterLeaseMs`: how long the lease lasts without a renewal. */
  readonly leaseMs: number;
  /** `clusterHeartbeatMs`: time between renewals (a quarter of the lease by default). */
  readonly heartbeatMs: number;
  readonly log: Logger;
}

/** `idle` before join and after leave; `live` while held; `fenced` and `reset` until the next join. */
export type LeaseState = 'idle' | 'live' | 'fenced' | 'reset';

export interface FencedInfo {
  readonly nodeId: string;
  /** The incarnation that lost its lease. */
  readonly incarnation: string;
  /** What the lease key held instead (another incarnation), or null when it had expired. */
  readonly heldBy: string | null;
}

export interface NodeInfo {
  readonly nodeId: string;
  /** The incarnation holding the node's lease, or null when the lease is gone (the node is dead). */
  readonly incarnation: string | null;
  /** Redis server time of the node's last heartbeat, ms. */
  readonly lastHeartbeatMs: number;
}

export class NodeLease {
  private stateNow: LeaseState = 'idle';
  private inc = '';
  private epoch = '';
  private timer: NodeJS.Timeout | null = null;
  private suspended = false;
  private renewing: Promise<void> | null = null;
  private readonly fencedListeners = new Set<(info: FencedInfo) => void>();
  private readonly resetListeners = new Set<() => void>();
  private readonly log: Logger;

  constructor(private readonly opts: NodeLeaseOptions) {
    this.log = opts.log.child({ node: opts.nodeId });
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }
  get state(): LeaseState {
    return this.stateNow;
  }
  /** The current incarnation ('' before the first join). Directory entries carry it. */
  get incarnation(): string {
    return this.inc;
  }

  onFenced(fn: (info: FencedInfo) => void): () => void {
    this.fencedListeners.add(fn);
    return () => this.fencedListeners.delete(fn);
  }
  onReset(fn: () => void): () => void {
    this.resetListeners.add(fn);
    return () => this.resetListeners.delete(fn);
  }

  /** Takes the lease with a new incarnation and starts the heartbeat. Also the way back after fenced or reset. */
  async join(): Promise<string> {
    this.clearTimer();
    const inc = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
    const { keys, nodeId, leaseMs } = this.opts;
    const res = (await JOIN.run(
      this.opts.redis,
      [keys.node(nodeId), keys.nodes, keys.epoch],
      [inc, leaseMs, nodeId, randomBytes(8).toString('hex')],
    )) as [string, string | null];
    this.inc = inc;
    this.epoch = res[0];
    this.stateNow = 'live';
    if (res[1] !== null) this.log.warn({ previous: res[1] }, 'took over the lease of an older incarnation');
    this.log.info({ incarnation: inc, leaseMs }, 'joined the cluster');
    this.schedule();
    return inc;
  }

  /** Renews once now (the heartbeat does this on its own). Resolves to the state after it. */
  async renew(): Promise<LeaseState> {
    this.renewing ??= this.renewOnce().finally(() => (this.renewing = null));
    await this.renewing;
    return this.stateNow;
  }

  /**
   * Stops the heartbeat without giving up the lease, as if the process were frozen (SIGSTOP), until `resume`.
   * For tests of fencing.
   */
  suspend(): void {
    this.suspended = true;
    this.clearTimer();
  }

  /** Ends a `suspend`: renews at once, as a process waking up would at its next timer. */
  async resume(): Promise<LeaseState> {
    this.suspended = false;
    const state = await this.renew();
    if (state === 'live') this.schedule();
    return state;
  }

  /** Gives the lease up (graceful stop): other nodes see this node gone at once. */
  async leave(): Promise<void> {
    this.clearTimer();
    const was = this.stateNow;
    this.stateNow = 'idle';
    if (was !== 'live') return;
    const { keys, nodeId } = this.opts;
    await LEAVE.run(this.opts.redis, [keys.node(nodeId), keys.nodes], [this.inc, nodeId]);
  }

  /** Every node in the `{p}nodes` ZSET with its lease holder (null: the node is dead). */
  async nodes(): Promise<NodeInfo[]> {
    return listNodes(this.opts.redis, this.opts.keys);
  }

  private async renewOnce(): Promise<void> {
    if (this.stateNow !== 'live') return;
    const { keys, nodeId, leaseMs } = this.opts;
    let res: number;
    try {
      res = Number(
        await RENEW.run(
          this.opts.redis,
          [keys.node(nodeId), keys.nodes, keys.epoch],
          [this.inc, leaseMs, nodeId, this.epoch],
        ),
      );
    } catch (err) {
      this.log.warn({ err }, 'lease renewal failed; retrying');
      return;
    }
    if (this.stateNow !== 'live') return;
    if (res === 1) return;
    this.clearTimer();
    if (res === 0) {
      const heldBy = await this.opts.redis.get(keys.node(nodeId)).catch(() => null);
      this.stateNow = 'fenced';
      const info: FencedInfo = { nodeId, incarnation: this.inc, heldBy };
      this.log.error(info, 'lease lost: this node was paused past its lease; fenced');
      for (const fn of [...this.fencedListeners]) fn(info);
    } else {
      this.stateNow = 'reset';
      this.log.warn({ incarnation: this.inc }, 'cluster epoch gone: Redis lost its data; rejoining');
      for (const fn of [...this.resetListeners]) fn();
    }
  }

  private schedule(): void {
    this.clearTimer();
    if (this.suspended || this.stateNow !== 'live') return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.renew().then(() => this.schedule());
    }, this.opts.heartbeatMs);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Reads the `{p}nodes` ZSET and each node's lease holder. */
export async function listNodes(redis: Redis, keys: ClusterKeys): Promise<NodeInfo[]> {
  const flat = await redis.zrange(keys.nodes, 0, -1, 'WITHSCORES');
  const ids: string[] = [];
  const scores: number[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    ids.push(flat[i]!);
    scores.push(Number(flat[i + 1]));
  }
  if (ids.length === 0) return [];
  const holders = await redis.mget(ids.map((id) => keys.node(id)));
  return ids.map((nodeId, i) => ({
    nodeId,
    incarnation: holders[i] ?? null,
    lastHeartbeatMs: scores[i]!,
  }));
}
