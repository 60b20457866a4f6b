/**
 * Channels that another cluster node routes to a client connected here, with their ids translated.
 *
 * Every node's router numbers the channels it opens towards a connection on its own (even ids from 2), and a node
 * reaches a client on another node through a proxy link. Without translation, two nodes could both number a
 * channel 2 on one device's socket, and the device's answers would go to the wrong node. So the node the client
 * is connected to numbers them all: an OPEN that node N sends here gets an even id reserved in this node's router
 * (`reserveForeign`), written into it and into every later frame N sends on that channel; the client's frames on
 * that id go back to N with N's id written in.
 *
 * A channel's translation ends when a RESET or REJECT passes either way, when both FINs have passed, or when the
 * client goes (its connection's ids go with it). It also ends, with the client's end reset, when its node's
 * incarnation is no longer live: a frame from a newer incarnation of that node, or a look at the cluster's nodes
 * (`retainLive`, every node on each reaper pass) that finds it dead or restarted. Each one holds a reserved id,
 * so a connection's limit bounds them.
 */
import { AipError, aipError } from '../../protocol/index.js';
import { ChannelOp, encodeReject, encodeReset } from '../../protocol/channel.js';
import type { ChannelPeer } from '../channel/router.js';

/** What the router gives and takes back (ChannelRouter.reserveForeign / releaseForeign). */
export interface ForeignIds {
  reserveForeign(peer: ChannelPeer): number | AipError;
  releaseForeign(peer: ChannelPeer, id: number): void;
}

interface Route {
  readonly node: string;
  /** The incarnation of `node` that opened it. */
  readonly incarnation: string;
  /** The channel's id at `node`. */
  readonly remoteId: number;
  /** FIN sent by the client, and by `node`. */
  finIn: boolean;
  finOut: boolean;
}

interface ClientRoutes {
  readonly clientId: string;
  readonly peer: ChannelPeer;
  /** Local id → route. */
  readonly byLocal: Map<number, Route>;
  /** `${node} ${incarnation} ${remote id}` → local id. */
  readonly byRemote: Map<string, number>;
}

const isChannelFrame = (b: Uint8Array): boolean => b.length >= 6 && b[0] === 0xc1;
const idOf = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(2);
/** A copy of a frame with another channel id (the bytes given may be a transport's reused buffer). */
function withId(b: Uint8Array, id: number): Uint8Array {
  const copy = Uint8Array.from(b);
  new DataView(copy.buffer).setUint32(2, id);
  return copy;
}

export class ForeignChannels {
  private readonly clients = new Map<string, ClientRoutes>();
  /** The incarnation of each node last heard from here. */
  private readonly incarnations = new Map<string, string>();

  constructor(private readonly ids: ForeignIds) {}

  /** Translations held (for tests and stats). */
  get size(): number {
    let n = 0;
    for (const c of this.clients.values()) n += c.byLocal.size;
    return n;
  }

  /**
   * A binary frame node `node` sends to local client `clientId` over `peer`: the frame to send to the client, or
   * null when nothing goes (a frame of a channel not known here, or an OPEN over the connection's limit, which is
   * refused to `node` through `reply`). Frames that are not channel frames pass as they are.
   */
  fromNode(
    node: string,
    incarnation: string,
    clientId: string,
    peer: ChannelPeer,
    bytes: Uint8Array,
    reply: (frame: Uint8Array) => void,
  ): Uint8Array | null {
    if (!isChannelFrame(bytes)) return bytes;
    const remoteId = idOf(bytes);
    const key = `${node} ${incarnation} ${remoteId}`;
    if (this.incarnations.get(node) !== incarnation) {
      this.drop((r) => r.node === node); // that node restarted: its earlier channels are over
      this.incarnations.set(node, incarnation);
    }
    let c = this.clients.get(clientId);
    if (bytes[1] === ChannelOp.OPEN) {
      if (c && c.peer !== peer) this.clientGone(clientId); // a new registration: the old one's ids went with it
      c = this.clients.get(clientId);
      if (c?.byRemote.has(key)) {
        const e = aipError('CHANNEL_ID_IN_USE', { channel: remoteId });
        reply(encodeReject(remoteId, e.code, e.message));
        return null;
      }
      const local = this.ids.reserveForeign(peer);
      if (local instanceof AipError) {
        reply(encodeReject(remoteId, local.code, local.message));
        return null;
      }
      if (!c) this.clients.set(clientId, (c = { clientId, peer, byLocal: new Map(), byRemote: new Map() }));
      c.byLocal.set(local, { node, incarnation, remoteId, finIn: false, finOut: false });
      c.byRemote.set(key, local);
      return withId(bytes, local);
    }
    const local = c?.byRemote.get(key);
    if (c === undefined || local === undefined) return null;
    const route = c.byLocal.get(local)!;
    const out = withId(bytes, local);
    if (bytes[1] === ChannelOp.FIN) route.finOut = true;
    if (bytes[1] === ChannelOp.RESET || bytes[1] === ChannelOp.REJECT || (route.finIn && route.finOut))
      this.end(c, local, route);
    return out;
  }

  /**
   * A channel frame from local client `clientId`: where it goes (the node and the frame with that node's id), or
   * null when it is not of a channel another node routes (this node's router takes it).
   */
  fromClient(clientId: string, bytes: Uint8Array): { node: string; frame: Uint8Array } | null {
    const c = this.clients.get(clientId);
    if (!c || !isChannelFrame(bytes)) return null;
    const local = idOf(bytes);
    const route = c.byLocal.get(local);
    if (!route) return null;
    const frame = withId(bytes, route.remoteId);
    if (bytes[1] === ChannelOp.FIN) route.finIn = true;
    if (bytes[1] === ChannelOp.RESET || bytes[1] === ChannelOp.REJECT || (route.finIn && route.finOut))
      this.end(c, local, route);
    return { node: route.node, frame };
  }

  /** The client went: its translations go (its connection's reserved ids went with the connection). */
  clientGone(clientId: string): void {
    const c = this.clients.get(clientId);
    if (!c) return;
    this.clients.delete(clientId);
    for (const local of c.byLocal.keys()) this.ids.releaseForeign(c.peer, local);
  }

  /**
   * The cluster's live nodes (node id → the incarnation holding its lease): the channels of any other node or
   * incarnation are over, and each is reset at the client's end.
   */
  retainLive(live: ReadonlyMap<string, string>): void {
    this.drop((r) => live.get(r.node) !== r.incarnation);
    for (const node of [...this.incarnations.keys()]) if (!live.has(node)) this.incarnations.delete(node);
  }

  private drop(stale: (r: Route) => boolean): void {
    const e = aipError('CHANNEL_PEER_GONE');
    for (const c of [...this.clients.values()])
      for (const [local, route] of [...c.byLocal])
        if (stale(route)) {
          if (!c.peer.closed) c.peer.sendRaw(encodeReset(local, e.code, e.message), true);
          this.end(c, local, route);
        }
  }

  private end(c: ClientRoutes, local: number, route: Route): void {
    c.byLocal.delete(local);
    c.byRemote.delete(`${route.node} ${route.incarnation} ${route.remoteId}`);
    this.ids.releaseForeign(c.peer, local);
    if (c.byLocal.size === 0 && this.clients.get(c.clientId) === c) this.clients.delete(c.clientId);
  }
}
