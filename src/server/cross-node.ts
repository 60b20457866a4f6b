/**
 * AIP across cluster nodes: what this node sends on the bus and what it does with what arrives.
 *
 * The rule: **a session runs on the node of its device.** A constellation on node A that sends a `task` for a
 * device on node B has the task handed to B (validated on A first, so refusals read the same); B runs the session
 * locally (agent, commands, results, checkpoints) and everything the requester is sent (the ACK, errors,
 * `task_end`, relayed transfers and channel frames) reaches it through its proxy link: a `frame` message to A.
 *
 * - A remembers the sessions it handed over (`forwarded`, bounded), so UFO transfers and channels of those
 *   sessions find their parties on A, and so a requester that disconnects from A is reported to B (`gone`: UFO's
 *   §8.4 cancel), as on one node. A node that dies reports nothing: its requesters' tasks go on (their results
 *   are readable from any node).
 * - Channel frames: a channel OPEN relayed to a client here by node N makes N the router of that channel; the
 *   client's later frames on it go back to N (`chan`), with the channel's id translated (foreign-channels.ts).
 * - A gap in a sender's sequence numbers (its messages trimmed unread) cancels every session here whose requester
 *   is on that node, and tells local requesters of sessions there: loudly, never silently.
 */
import { LRUCache } from 'lru-cache';
import { AipError, aipError, type ClientMessage } from '../../protocol/index.js';
import type { ClusterBus } from '../cluster/bus.js';
import type { BusMessage, Envelope, OutboundFrame } from '../cluster/envelope.js';
import type { Logger } from '../logger.js';
import type { ClientInfo, ClientLink } from '../state/client-directory.js';
import type { RedisClientDirectory } from '../state/redis-client-directory.js';
import type { ChannelPeer } from '../channel/router.js';
import { sendError } from './dispatch.js';
import type { TaskService } from './tasks.js';
import { ForeignChannels, type ForeignIds } from './foreign-channels.js';

/** A session this node's client requested that runs on another node. */
interface Forwarded {
  readonly requesterId: string;
  readonly executorId: string;
  readonly node: string;
}

export interface CrossNodeOptions {
  readonly bus: ClusterBus;
  readonly directory: RedisClientDirectory;
  readonly tasks: TaskService;
  /** The channel router's frame entry (a frame from a client, as if it had arrived here). */
  readonly channelFrame: (peer: ChannelPeer, bytes: Uint8Array) => void;
  /** The channel router's ids for channels other nodes route to clients here. */
  readonly channelIds: ForeignIds;
  /** `clusterForwardedMax`: sessions handed to other nodes remembered at most. */
  readonly maxForwarded: number;
  /** `clusterCancelWaitMs`: how long a cancel sent to another node waits for the session to end there. */
  readonly cancelWaitMs: number;
  readonly log: Logger;
}

export class CrossNode {
  private readonly forwarded: LRUCache<string, Forwarded>;
  /** Requester id → the ids of its sessions in `forwarded` (kept in step by the cache's dispose). */
  private readonly byRequester = new Map<string, Set<string>>();
  /** Channels other nodes route to clients here, with their ids translated (see foreign-channels.ts). */
  readonly foreign: ForeignChannels;
  private readonly log: Logger;

  constructor(private readonly opts: CrossNodeOptions) {
    this.forwarded = new LRUCache<string, Forwarded>({
      max: opts.maxForwarded,
      dispose: (f, sid) => {
        const ids = this.byRequester.get(f.requesterId);
        if (ids?.delete(sid) && ids.size === 0) this.byRequester.delete(f.requesterId);
      },
    });
    this.log = opts.log.child({ component: 'cross-node' });
    this.foreign = new ForeignChannels(opts.channelIds);
    opts.tasks.route = (requester, msg, executorId) => this.route(requester, msg, executorId);
    opts.tasks.remoteParties = (sid) => this.forwarded.get(sid) ?? null;
    opts.tasks.cancelElsewhere = (sid, reason, wait) => this.cancelElsewhere(sid, reason, wait);
    opts.tasks.resumedHere = (sid, requesterId) => this.resumedHere(sid, requesterId);
  }

  /** Remembers a session handed to `node` (replacing what was known of it). */
  private remember(sid: string, f: Forwarded): void {
    this.forwarded.set(sid, f);
    let ids = this.byRequester.get(f.requesterId);
    if (!ids) this.byRequester.set(f.requesterId, (ids = new Set()));
    ids.add(sid);
  }

  /** A crashed session resumed here: its requester's node (if another) sends what concerns it here from now on. */
  private resumedHere(sid: string, requesterId: string): void {
    const { directory, bus } = this.opts;
    const node = directory.nodeOf(requesterId);
    if (node !== undefined && node !== directory.nodeId) bus.send(node, { t: 'moved', sid });
  }

  /** REST cancel or delete of a session another node runs: that node cancels it; resolves once it has ended. */
  private async cancelElsewhere(sid: string, reason: string, wait: boolean): Promise<boolean> {
    const { tasks, directory, bus } = this.opts;
    const sessions = tasks.records.sessions;
    const rec = await sessions.get(sid);
    const node = rec?.managed_by;
    if (!rec?.task || !node || node === directory.nodeId) return false;
    if (rec.status !== 'active' && rec.status !== 'paused') return false;
    if (!bus.send(node, { t: 'cancel', sid, reason })) throw aipError('CLUSTER_BUS_UNAVAILABLE', { node });
    if (!wait) return true;
    const deadline = Date.now() + this.opts.cancelWaitMs;
    for (;;) {
      const cur = await sessions.get(sid);
      if (!cur || (cur.status !== 'active' && cur.status !== 'paused')) return true;
      if (Date.now() > deadline) return true; // asked; its node ends it (or the reaper, if it is gone)
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The directory's way to reach a client on another node. */
  readonly sender = (node: string, clientId: string, fence: number, frame: OutboundFrame): boolean =>
    this.opts.bus.send(node, { t: 'frame', to: clientId, fence, frame });

  /** Sessions handed to other nodes and not known to be over. */
  get forwardedCount(): number {
    return this.forwarded.size;
  }

  private route(requester: ClientInfo, msg: ClientMessage, executorId: string): AipError | true | null {
    const { directory, bus } = this.opts;
    const node = directory.nodeOf(executorId);
    if (node === undefined || node === directory.nodeId) return null;
    const me = directory.localEntry(requester.clientId);
    if (!me) return aipError('NOT_REGISTERED');
    if (!bus.reachable) return aipError('CLUSTER_BUS_UNAVAILABLE', { node });
    const sid = msg.session_id!;
    const sent = bus.send(node, {
      t: 'task',
      from: requester.clientId,
      fence: me.fence,
      incarnation: me.incarnation,
      info: requester as unknown as Record<string, unknown>,
      msg: msg as unknown as Record<string, unknown>,
    });
    if (!sent) return aipError('CLUSTER_BUS_UNAVAILABLE', { node });
    this.remember(sid, { requesterId: requester.clientId, executorId, node });
    return true;
  }

  /** A local client disconnected: the nodes running sessions it requested cancel them (UFO §8.4). */
  clientGone(clientId: string, reason: 'disconnected' | 'slow_consumer'): void {
    this.foreign.clientGone(clientId);
    const nodes = new Set<string>();
    for (const sid of [...(this.byRequester.get(clientId) ?? [])]) {
      const f = this.forwarded.get(sid);
      if (f) nodes.add(f.node);
      this.forwarded.delete(sid);
    }
    for (const node of nodes) this.opts.bus.send(node, { t: 'gone', client: clientId, reason });
  }

  /**
   * A channel frame from a local client: true when it belongs to a channel another node routes (and was sent
   * there), false when this node's router takes it.
   */
  channelFromClient(client: ClientInfo, bytes: Uint8Array): boolean {
    const to = this.foreign.fromClient(client.clientId, bytes);
    if (to === null) return false;
    const me = this.opts.directory.localEntry(client.clientId);
    if (me)
      this.opts.bus.send(to.node, { t: 'chan', from: client.clientId, fence: me.fence, data: to.frame });
    return true;
  }

  /** Every message the bus delivers to this node. */
  onMessage(env: Envelope): void {
    const m = env.m;
    switch (m.t) {
      case 'frame':
        return this.deliver(env.s, env.i, m.to, m.fence, m.frame);
      case 'task':
        return this.startTask(env.s, m);
      case 'gone':
        return this.opts.tasks.clientGone({ clientId: m.client } as ClientInfo, m.reason);
      case 'cancel':
        this.opts.tasks.cancelById(m.sid, m.reason);
        return;
      case 'forget':
        this.forwarded.delete(m.sid);
        return;
      case 'moved': {
        const f = this.forwarded.get(m.sid);
        if (f && f.node !== env.s) {
          this.log.info(
            { session_id: m.sid, from: f.node, to: env.s },
            'forwarded session resumed on another node',
          );
          this.remember(m.sid, { ...f, node: env.s });
        }
        return;
      }
      case 'chan': {
        const link = this.opts.directory.link(m.from);
        if (link && !link.closed) this.opts.channelFrame(link, toBytes(m.data));
        return;
      }
      default:
        this.log.warn({ type: (m as { t: string }).t, from: env.s }, 'unknown bus message skipped');
    }
  }

  /** Messages from `node` were lost: every session concerned ends or is reported, loudly. */
  onGap(node: string, missing: number): void {
    const reason = aipError('CLUSTER_MESSAGES_LOST', { node, missing }).message;
    const { tasks, directory } = this.opts;
    for (const live of [...tasks.live.values()])
      if (directory.nodeOf(live.ownerId) === node) tasks.cancelById(live.id, reason);
    for (const [sid, f] of this.forwarded.entries()) {
      if (f.node !== node) continue;
      const link = directory.link(f.requesterId);
      if (link) sendError(link, `${reason} (session ${sid})`);
      this.opts.bus.send(node, { t: 'cancel', sid, reason });
    }
  }

  private deliver(
    from: string,
    incarnation: string,
    clientId: string,
    fence: number,
    frame: OutboundFrame,
  ): void {
    const link = this.opts.directory.localLink(clientId, fence);
    if (!link) return; // the registration it was meant for is gone
    switch (frame.kind) {
      case 'message': {
        const msg = frame.msg;
        if (msg.type === 'task_end' && typeof msg.session_id === 'string')
          this.forwarded.delete(msg.session_id);
        link.send(msg);
        return;
      }
      case 'raw':
        link.sendRaw(typeof frame.data === 'string' ? frame.data : toBytes(frame.data), frame.isBinary);
        return;
      case 'chan': {
        const data = this.foreign.fromNode(from, incarnation, clientId, link, toBytes(frame.data), (reject) =>
          this.opts.bus.send(from, { t: 'chan', from: clientId, fence, data: reject }),
        );
        if (data !== null) link.sendRaw(data, true);
        return;
      }
      case 'close':
        link.close(frame.code, frame.reason);
    }
  }

  private startTask(node: string, m: Extract<BusMessage, { t: 'task' }>): void {
    const { directory, tasks } = this.opts;
    const info = m.info as unknown as ClientInfo;
    directory.learn(node, m.incarnation, m.fence, info);
    const requester = directory.get(m.from) ?? info;
    const msg = m.msg as unknown as ClientMessage;
    const r = tasks.start(requester, msg);
    if (!(r instanceof AipError)) return;
    this.log.info({ code: r.code, session_id: msg.session_id, requester: m.from }, 'forwarded task refused');
    const link: ClientLink | undefined = directory.link(m.from);
    if (link) sendError(link, r.message);
    if (msg.session_id) this.opts.bus.send(node, { t: 'forget', sid: msg.session_id });
  }
}

/** Bytes as decoded from an envelope (msgpackr gives a Buffer, itself a Uint8Array; anything else is copied). */
function toBytes(data: Uint8Array): Uint8Array {
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}
