/**
 * What the cluster-wide client directory (src/state/redis-client-directory.ts) reads and writes in Redis: claims,
 * releases and evictions run the Lua scripts of directory-scripts.ts; a snapshot reads the `{p}dir` hash and the
 * leases of the nodes its entries name. Keeps count of the claims in flight, which a resync must not release.
 */
import type { Redis } from 'ioredis';
import { aipError } from '../../../protocol/index.js';
import type { ClusterKeys } from '../../cluster/keys.js';
import { LuaScript } from '../../cluster/lua.js';
import type { NodeLease } from '../../cluster/node-lease.js';
import type { Logger } from '../../logger.js';
import type { ClientInfo } from '../client-directory.js';
import { parseEntry, type DirectoryEntry } from './directory-entry.js';
import { infoOnly } from './directory-records.js';
import { CLAIM_SCRIPT, EVICT_SCRIPT, RELEASE_SCRIPT } from './directory-scripts.js';

const CLAIM = new LuaScript('claim', CLAIM_SCRIPT);
const RELEASE = new LuaScript('release', RELEASE_SCRIPT);
const EVICT = new LuaScript('evict', EVICT_SCRIPT);

/** The directory as Redis holds it: its readable entries, and which incarnation holds each of their nodes' lease. */
export interface DirectorySnapshot {
  readonly entries: DirectoryEntry[];
  /** Node id → the incarnation its lease key holds (null when the lease is gone). */
  readonly holderOf: Map<string, string | null>;
}

export class DirectoryCommands {
  /** Claims in flight per id: a resync must not release an entry whose claim has not come back yet. */
  private readonly claiming = new Map<string, number>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: ClusterKeys,
    private readonly lease: NodeLease,
    private readonly log: Logger,
  ) {}

  /** True while a claim of `clientId` has not come back yet. */
  isClaiming(clientId: string): boolean {
    return this.claiming.has(clientId);
  }

  /**
   * Claims `info.clientId` for this node's current incarnation: its fence and incarnation, or null when a live
   * entry holds the id. Throws CLUSTER_NODE_FENCED when this node's lease is gone, CLUSTER_UNAVAILABLE when Redis
   * cannot be reached.
   */
  async claim(info: ClientInfo): Promise<{ fence: number; incarnation: string } | null> {
    const { lease, keys } = this;
    const inc = lease.incarnation;
    const id = info.clientId;
    this.claiming.set(id, (this.claiming.get(id) ?? 0) + 1);
    let res: [number, string | null];
    try {
      res = (await CLAIM.run(
        this.redis,
        [keys.dir, keys.fence, keys.node(lease.nodeId)],
        [id, lease.nodeId, inc, JSON.stringify(infoOnly(info)), keys.nodeKeyPrefix, keys.changes],
      )) as [number, string | null];
    } catch (err) {
      throw aipError('CLUSTER_UNAVAILABLE', { reason: (err as Error).message });
    } finally {
      const n = this.claiming.get(id)! - 1;
      if (n === 0) this.claiming.delete(id);
      else this.claiming.set(id, n);
    }
    if (res[0] === -1) throw aipError('CLUSTER_NODE_FENCED', { node: lease.nodeId });
    if (res[0] === 0) return null;
    const fence = Number(res[1]);
    if (lease.incarnation !== inc || lease.state !== 'live') {
      // Fenced (and maybe rejoined) while the claim was in flight: the entry is already dead; give it back.
      await this.release(id, fence, inc);
      throw aipError('CLUSTER_NODE_FENCED', { node: lease.nodeId });
    }
    return { fence, incarnation: inc };
  }

  /** Removes the entry of `clientId` while it is still registration `fence` of incarnation `inc`. Never throws. */
  async release(clientId: string, fence: number, inc: string): Promise<void> {
    const { redis, keys, lease } = this;
    try {
      await RELEASE.run(redis, [keys.dir], [clientId, String(fence), lease.nodeId, inc, keys.changes]);
    } catch (err) {
      this.log.warn({ err, client_id: clientId }, 'could not release a directory entry; the resync will');
    }
  }

  /** The janitor's sweep of entry `e`, whose node's lease no longer holds its incarnation. */
  evict(e: DirectoryEntry): Promise<unknown> {
    const { redis, keys } = this;
    return EVICT.run(redis, [keys.dir], [e.clientId, e.raw, keys.nodeKeyPrefix, keys.changes]);
  }

  /** Reads the whole directory and its nodes' leases; unreadable entries are logged and skipped. */
  async snapshot(): Promise<DirectorySnapshot> {
    const { redis, keys } = this;
    const entries: DirectoryEntry[] = [];
    const raw = await redis.hgetall(keys.dir);
    for (const [id, value] of Object.entries(raw)) {
      const e = parseEntry(id, value);
      if (e) entries.push(e);
      else this.log.warn({ client_id: id }, 'unreadable directory entry skipped');
    }
    const nodes = [...new Set(entries.map((e) => e.nodeId))];
    const holders = nodes.length > 0 ? await redis.mget(nodes.map((n) => keys.node(n))) : [];
    return { entries, holderOf: new Map(nodes.map((n, i) => [n, holders[i] ?? null])) };
  }
}
