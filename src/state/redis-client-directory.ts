/**
 * The cluster-wide client directory on Redis: a `client_id` is registered on exactly one node of the cluster.
 *
 * Writes go to Redis through Lua scripts (src/state/redis/directory-scripts.ts, run by directory-commands.ts):
 * `register` claims the id atomically, so a duplicate on any node is refused exactly as on one node (false; the
 * caller sends UFO's error and leaves the original connection untouched), and a fenced node's claims are refused.
 * `unregister` removes the entry only while it is still this registration's.
 *
 * Lookups stay synchronous, from this node's view: its own clients with their real links, plus a view of every
 * other node's live entries. The view follows the `{p}dir:changes` channel and is rebuilt from the `{p}dir` hash
 * every `resyncMs` (and whenever the subscriber connection comes back), because pub/sub may drop messages. Each
 * resync is also the janitor: entries whose node has lost its lease are evicted (any node may do it), and
 * entries of this node's incarnation that no local client holds (an unregister that could not reach Redis) are
 * released. A remote client's `link` is a proxy to a `RemoteSender`; its `closed` is true once its entry is gone.
 *
 * When the node's lease is fenced, every local client's socket is closed (1001) and forgotten; the node joins
 * again with a new incarnation (`NodeLease.join`) and its clients reconnect. When Redis lost its data (`reset`),
 * `reclaimLocal` registers the live local clients again after the rejoin.
 */
import type { Redis } from 'ioredis';
import { aipError, CloseCode, Errors } from '../../protocol/index.js';
import type { ClusterKeys } from '../cluster/keys.js';
import type { NodeLease } from '../cluster/node-lease.js';
import type { Logger } from '../logger.js';
import type { ClientDirectory, ClientInfo, ClientLink, DirectoryStats } from './client-directory.js';
import type { LocalClientRecord } from './memory-client-directory.js';
import { DirectoryCommands, type DirectorySnapshot } from './redis/directory-commands.js';
import { parseChange } from './redis/directory-entry.js';
import { clusterRecord, infoOnly, type LocalRecord, type RemoteRecord } from './redis/directory-records.js';
import { RemoteClientLink, unreachableSender, type RemoteSender } from './redis/remote-link.js';
import { RemoteViewListeners } from './redis/remote-view-listeners.js';

export interface RedisDirectoryOptions {
  /** Commands (may be shared with the node's lease). */
  readonly redis: Redis;
  /** A connection of its own for `{p}dir:changes` (a subscribed connection cannot run commands). */
  readonly subscriber: Redis;
  readonly keys: ClusterKeys;
  readonly lease: NodeLease;
  /** `clusterResyncMs`: time between full rebuilds of the view of other nodes' clients (and janitor sweeps). */
  readonly resyncMs: number;
  /** How frames reach clients on other nodes; by default nothing does (sends return false). */
  readonly remoteSender?: RemoteSender;
  readonly log: Logger;
}

export class RedisClientDirectory implements ClientDirectory {
  private readonly local = new Map<string, LocalRecord>();
  private readonly byLink = new Map<ClientLink, LocalRecord>();
  private remote = new Map<string, RemoteRecord>();
  /** Claims, releases, evictions and snapshots in Redis (and the claims in flight). */
  private readonly commands: DirectoryCommands;
  private sender: RemoteSender;
  private timer: NodeJS.Timeout | null = null;
  private resyncing: Promise<void> | null = null;
  /** Changes that arrive while a resync reads Redis: applied again on top of its snapshot. */
  private replay: string[] | null = null;
  private started = false;
  private draining = false;
  private readonly log: Logger;
  /** Who hears of other nodes' clients entering and leaving this node's view. */
  private readonly listeners: RemoteViewListeners;
  private readonly offFenced: () => void;
  private readonly onMessage = (channel: string, message: string): void => {
    if (channel === this.opts.keys.changes) this.applyChange(message);
  };
  private readonly onSubscriberReady = (): void => {
    if (this.started) void this.resync();
  };

  constructor(private readonly opts: RedisDirectoryOptions) {
    this.sender = opts.remoteSender ?? unreachableSender;
    this.log = opts.log.child({ component: 'directory', node: opts.lease.nodeId });
    this.commands = new DirectoryCommands(opts.redis, opts.keys, opts.lease, this.log);
    this.listeners = new RemoteViewListeners(this.log);
    this.offFenced = opts.lease.onFenced(() => this.dropLocal());
  }

  get nodeId(): string {
    return this.opts.lease.nodeId;
  }

  /** Plugs in the cross-node bus. */
  setRemoteSender(sender: RemoteSender): void {
    this.sender = sender;
  }

  /** Subscribes to directory changes, builds the view once, and starts the periodic resync. */
  async start(): Promise<void> {
    const sub = this.opts.subscriber;
    sub.on('message', this.onMessage);
    sub.on('ready', this.onSubscriberReady);
    await sub.subscribe(this.opts.keys.changes);
    this.started = true;
    await this.resync();
    this.schedule();
  }

  /** Stops following changes. Local clients stay registered (the caller closes their sockets). */
  async stop(): Promise<void> {
    this.started = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.offFenced();
    const sub = this.opts.subscriber;
    sub.off('message', this.onMessage);
    sub.off('ready', this.onSubscriberReady);
    await this.resyncing?.catch(() => undefined);
    if (sub.status === 'ready') await sub.unsubscribe(this.opts.keys.changes).catch(() => undefined);
  }

  /**
   * Graceful drain (SIGTERM): from now on registrations are refused with CLUSTER_DRAINING (close 4020, so the
   * client connects to another node); clients already here stay.
   */
  drain(): void {
    this.draining = true;
  }

  async register(info: ClientInfo, link: ClientLink): Promise<boolean> {
    const { lease } = this.opts;
    if (this.draining) throw aipError('CLUSTER_DRAINING', { node: lease.nodeId });
    if (lease.state !== 'live') throw aipError('CLUSTER_NODE_FENCED', { node: lease.nodeId });
    if (this.local.has(info.clientId)) return false;
    const claimed = await this.commands.claim(info);
    if (claimed === null) return false;
    const rec = clusterRecord(info, link, claimed.fence, claimed.incarnation, undefined);
    this.local.set(info.clientId, rec);
    this.byLink.set(link, rec);
    this.dropRemote(info.clientId);
    return true;
  }

  async unregister(clientId: string, link: ClientLink): Promise<boolean> {
    const rec = this.local.get(clientId);
    if (!rec || rec.conn !== link) return false;
    this.local.delete(clientId);
    this.byLink.delete(link);
    // If Redis cannot be reached now, the next resync releases the orphaned entry.
    await this.commands.release(clientId, rec.fence, rec.incarnation);
    return true;
  }

  /** A client's info with its link as `conn` (for another node's client: the proxy link). */
  get(clientId: string): LocalClientRecord | undefined {
    const own = this.local.get(clientId);
    if (own) return own;
    const rec = this.remote.get(clientId);
    if (!rec) return undefined;
    rec.record ??= { ...rec.info, conn: this.link(clientId)! };
    return rec.record;
  }

  isLocal(clientId: string): boolean {
    return this.local.has(clientId);
  }

  link(clientId: string): ClientLink | undefined {
    const own = this.local.get(clientId);
    if (own) return own.conn;
    const rec = this.remote.get(clientId);
    if (!rec) return undefined;
    rec.link ??= new RemoteClientLink(
      rec.nodeId,
      clientId,
      rec.fence,
      () => this.remote.get(clientId)?.fence === rec.fence,
      () => this.sender,
    );
    return rec.link;
  }

  clientOf(link: ClientLink): ClientInfo | undefined {
    const own = this.byLink.get(link);
    if (own) return own;
    if (!(link instanceof RemoteClientLink) || link.closed) return undefined;
    return this.remote.get(link.clientId)?.info;
  }

  /** Every id in the cluster, in registration order (the fence only grows). */
  list(): string[] {
    return this.ordered().map((r) => r.clientId);
  }

  stats(): DirectoryStats {
    let total = 0;
    let devices = 0;
    for (const rec of this.local.values()) {
      total++;
      if (rec.clientType === 'device') devices++;
    }
    for (const rec of this.remote.values()) {
      total++;
      if (rec.info.clientType === 'device') devices++;
    }
    return { total, device_clients: devices, constellation_clients: total - devices };
  }

  all(): Iterable<ClientInfo> {
    return this.ordered().map((r) => r.info);
  }

  /** The node holding `clientId`, or undefined. */
  nodeOf(clientId: string): string | undefined {
    if (this.local.has(clientId)) return this.nodeId;
    return this.remote.get(clientId)?.nodeId;
  }

  /** This node's own client `clientId`, if it is still the registration `fence` (what a bus frame names). */
  localLink(clientId: string, fence: number): ClientLink | undefined {
    const rec = this.local.get(clientId);
    if (!rec) return undefined;
    return rec.fence === fence || rec.pastFences?.includes(fence) ? rec.conn : undefined;
  }

  /** The registration of this node's client `clientId` (fence and incarnation), for messages naming it. */
  localEntry(clientId: string): { fence: number; incarnation: string } | undefined {
    const rec = this.local.get(clientId);
    return rec ? { fence: rec.fence, incarnation: rec.incarnation } : undefined;
  }

  /**
   * Another node's client, as a bus message from that node names it: added to the view if the view has not
   * caught up with the directory yet (pub/sub and the stream travel on different connections). A later resync
   * drops it if Redis does not hold it.
   */
  learn(nodeId: string, incarnation: string, fence: number, info: ClientInfo): void {
    if (nodeId === this.nodeId || this.local.has(info.clientId)) return;
    const old = this.remote.get(info.clientId);
    if (old && old.fence >= fence) return;
    this.remote.set(info.clientId, {
      clientId: info.clientId,
      nodeId,
      incarnation,
      fence,
      info: infoOnly(info),
      raw: '',
      link: null,
      record: null,
    });
  }

  /**
   * Tells `fn` when another node's client enters this node's view (a registration there, or an entry a resync
   * found): what was kept for it here (a `task_end` it missed) can be sent now.
   */
  onRemoteSeen(fn: (clientId: string) => void): () => void {
    return this.listeners.onSeen(fn);
  }

  /**
   * Tells `fn` when another node's client leaves this node's view, with the proxy link made for it (only when one
   * was): what this node had going with it through that link (channels) is over.
   */
  onRemoteGone(fn: (link: ClientLink) => void): () => void {
    return this.listeners.onGone(fn);
  }

  private dropRemote(clientId: string): void {
    const r = this.remote.get(clientId);
    if (!r) return;
    this.remote.delete(clientId);
    this.listeners.gone(r);
  }

  /** This node's own clients. */
  localCount(): number {
    return this.local.size;
  }

  /**
   * Closes every local client's socket (1001) and forgets them: what a fenced node does, since other nodes may
   * already hold its clients. Returns how many were dropped.
   */
  dropLocal(): number {
    const recs = [...this.local.values()];
    this.local.clear();
    this.byLink.clear();
    const reason = Errors.CLUSTER_NODE_FENCED.text({ node: this.nodeId });
    for (const rec of recs) rec.conn.close(CloseCode.GOING_AWAY, reason);
    if (recs.length > 0) this.log.warn({ clients: recs.length }, 'fenced: dropped local clients');
    return recs.length;
  }

  /**
   * After Redis lost its data and the lease joined again: claims every local client again under the new
   * incarnation. A client whose id another node took meanwhile is closed as a duplicate. Returns how many kept.
   */
  async reclaimLocal(): Promise<number> {
    let kept = 0;
    for (const rec of [...this.local.values()]) {
      if (this.local.get(rec.clientId) !== rec) continue; // unregistered meanwhile
      if (rec.incarnation === this.opts.lease.incarnation) {
        kept++; // claimed already (a retry after a failure part way)
        continue;
      }
      const claimed = await this.commands.claim(rec);
      if (this.local.get(rec.clientId) !== rec) {
        if (claimed) await this.commands.release(rec.clientId, claimed.fence, claimed.incarnation);
        continue;
      }
      if (claimed) {
        const next = clusterRecord(rec, rec.conn, claimed.fence, claimed.incarnation, [
          ...(rec.pastFences ?? []),
          rec.fence,
        ]);
        this.local.set(rec.clientId, next);
        this.byLink.set(rec.conn, next);
        kept++;
      } else {
        this.local.delete(rec.clientId);
        this.byLink.delete(rec.conn);
        const err = aipError('DUPLICATE_CLIENT_ID', { id: rec.clientId });
        rec.conn.close(CloseCode.DUPLICATE_CLIENT_ID, err.message);
      }
    }
    await this.resync();
    return kept;
  }

  /** Rebuilds the view of other nodes' clients from Redis, evicting dead nodes' entries. Never throws. */
  resync(): Promise<void> {
    this.resyncing ??= this.resyncOnce()
      .catch((err: unknown) => this.log.warn({ err }, 'directory resync failed; will retry'))
      .finally(() => (this.resyncing = null));
    return this.resyncing;
  }

  private async resyncOnce(): Promise<void> {
    const { lease } = this.opts;
    this.replay = [];
    let snapshot: DirectorySnapshot;
    try {
      snapshot = await this.commands.snapshot();
    } catch (err) {
      this.replay = null;
      throw err;
    }
    const { entries, holderOf } = snapshot;
    const next = new Map<string, RemoteRecord>();
    const sweeps: Promise<unknown>[] = [];
    for (const e of entries) {
      if (holderOf.get(e.nodeId) !== e.incarnation) {
        sweeps.push(this.commands.evict(e));
        continue;
      }
      if (e.nodeId === lease.nodeId && e.incarnation === lease.incarnation) {
        const own = this.local.get(e.clientId);
        if (own?.fence !== e.fence && !this.commands.isClaiming(e.clientId))
          sweeps.push(this.commands.release(e.clientId, e.fence, e.incarnation));
        continue;
      }
      if (this.local.has(e.clientId)) continue;
      const old = this.remote.get(e.clientId);
      next.set(e.clientId, old?.fence === e.fence ? old : { ...e, link: null, record: null });
    }
    const added = [...next.keys()].filter((id) => !this.remote.has(id));
    const dropped = [...this.remote.values()].filter((r) => next.get(r.clientId) !== r);
    this.remote = next;
    for (const r of dropped) this.listeners.gone(r);
    for (const id of added) this.listeners.seen(id);
    const replay = this.replay;
    this.replay = null;
    for (const message of replay) this.applyChange(message);
    await Promise.all(sweeps);
  }

  private applyChange(message: string): void {
    this.replay?.push(message);
    const change = parseChange(message);
    if (!change) return void this.log.warn('unreadable directory change skipped');
    if (change.op === 'del') {
      if (this.remote.get(change.clientId)?.fence === change.fence) this.dropRemote(change.clientId);
      return;
    }
    const e = change.entry;
    const { lease } = this.opts;
    if (e.nodeId === lease.nodeId || this.local.has(e.clientId)) return;
    const old = this.remote.get(e.clientId);
    if (old && old.fence >= e.fence) return;
    this.remote.set(e.clientId, { ...e, link: null, record: null });
    this.listeners.seen(e.clientId);
  }

  private ordered(): { clientId: string; fence: number; info: ClientInfo }[] {
    const out: { clientId: string; fence: number; info: ClientInfo }[] = [];
    for (const rec of this.local.values()) out.push({ clientId: rec.clientId, fence: rec.fence, info: rec });
    for (const rec of this.remote.values()) out.push(rec);
    return out.sort((a, b) => a.fence - b.fence);
  }

  private schedule(): void {
    if (!this.started) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.resync().then(() => this.schedule());
    }, this.opts.resyncMs);
    this.timer.unref();
  }
}
