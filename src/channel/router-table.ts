/**
 * The channel router's book-keeping (router.ts): the channels it takes part in, which id names which channel on
 * each connection, which channels each session has open, the allocation of the server's even ids, the per-session
 * limit, and the `onChannel` lifecycle events as channels are indexed and freed.
 */
import { aipError, type AipError } from '../../protocol/index.js';
import type { ChannelKind } from '../../protocol/channel.js';
import type { ChannelEndpoint } from './endpoint.js';
import type { ChannelPeer, ChannelRouterOptions } from './router-options.js';

/** Per direction: the data written by this end towards the other. */
export interface End {
  readonly conn: ChannelPeer;
  readonly id: number;
  seq: number;
  sent: number;
  consumed: number;
  /** The other end's receive window (what this end may have in flight). */
  window: number;
  fin: boolean;
}
export interface Relay {
  readonly type: 'relay';
  readonly sessionId: string;
  readonly kind: ChannelKind;
  readonly a: End; // opener
  readonly b: End;
  open: boolean;
  /** Pending until the other party answers the OPEN. */
  openTimer: NodeJS.Timeout | null;
}
export interface Local {
  readonly type: 'local';
  readonly sessionId: string;
  readonly kind: ChannelKind;
  readonly conn: ChannelPeer;
  readonly id: number;
  readonly ep: ChannelEndpoint;
}
export type Chan = Relay | Local;
/** A channel this router takes part in, or an id reserved for a channel another cluster node routes. */
export type Ref =
  | { readonly chan: Chan; readonly side: 'a' | 'b' | 'local' }
  | { readonly chan: null; readonly side: 'foreign' };
export const FOREIGN: Ref = { chan: null, side: 'foreign' };
export interface ConnEntry {
  nextEven: number;
  readonly refs: Map<number, Ref>;
}

export function clearOpenTimer(chan: Relay): void {
  if (chan.openTimer) clearTimeout(chan.openTimer);
  chan.openTimer = null;
}

/** The router's channels, by connection and by session. */
export class ChannelTable {
  /** Each connection's channel ids (its own odd ones and the even ones the server chose). */
  readonly conns = new Map<ChannelPeer, ConnEntry>();
  /** Each session's live channels. */
  readonly sessions = new Map<string, Set<Chan>>();
  private readonly maxPerSession: number;

  constructor(private readonly opts: ChannelRouterOptions) {
    this.maxPerSession = opts.maxChannelsPerSession ?? 32;
  }

  /** Live channels, and bytes in flight through them (forwarded, not yet consumed by their readers). */
  stats(): { channels: number; bufferedBytes: number } {
    let channels = 0;
    let bufferedBytes = 0;
    for (const set of this.sessions.values()) {
      for (const c of set) {
        channels++;
        if (c.type === 'relay') bufferedBytes += c.a.sent - c.a.consumed + (c.b.sent - c.b.consumed);
        else {
          const s = c.ep.stats();
          bufferedBytes += s.queuedBytes + s.inFlight;
        }
      }
    }
    return { channels, bufferedBytes };
  }

  free(chan: Chan): void {
    if (chan.type === 'local') this.conns.get(chan.conn)?.refs.delete(chan.id);
    else {
      clearOpenTimer(chan);
      this.conns.get(chan.a.conn)?.refs.delete(chan.a.id);
      this.conns.get(chan.b.conn)?.refs.delete(chan.b.id);
    }
    const set = this.sessions.get(chan.sessionId);
    if (set?.delete(chan)) {
      if (set.size === 0) this.sessions.delete(chan.sessionId);
      let bytes: number;
      if (chan.type === 'relay') bytes = chan.a.sent + chan.b.sent;
      else {
        const s = chan.ep.stats();
        bytes = s.sentBytes + s.receivedBytes;
      }
      this.opts.onChannel?.({ type: 'closed', sessionId: chan.sessionId, kind: chan.kind, bytes });
    }
  }

  /** The refusal when session `sid` has its limit of open channels, or null. */
  sessionFull(sid: string): AipError | null {
    const n = this.sessions.get(sid)?.size ?? 0;
    return n >= this.maxPerSession
      ? aipError('CHANNEL_SESSION_TOO_MANY', { sid, max: this.maxPerSession })
      : null;
  }

  index(chan: Chan): void {
    let set = this.sessions.get(chan.sessionId);
    if (!set) this.sessions.set(chan.sessionId, (set = new Set()));
    set.add(chan);
    this.opts.onChannel?.({ type: 'opened', sessionId: chan.sessionId, kind: chan.kind });
  }

  entry(conn: ChannelPeer): ConnEntry {
    let e = this.conns.get(conn);
    if (!e) this.conns.set(conn, (e = { nextEven: 2, refs: new Map() }));
    return e;
  }

  allocEven(e: ConnEntry): number {
    let id = e.nextEven;
    while (e.refs.has(id)) id = (id + 2) >>> 0 || 2;
    e.nextEven = (id + 2) >>> 0 || 2;
    return id;
  }
}
