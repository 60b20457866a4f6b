/**
 * The server-side channel router. The server feeds it every binary frame whose first byte is 0xC1.
 *
 * - OPEN from one party of a live session is relayed to the other party (controller ↔ device) under an id the
 *   router allocates on that connection (server-chosen ids are even, client-chosen odd).
 * - Every later frame must name a channel of the connection it arrives on: a non-party never learns or owns an id.
 * - The router buffers nothing. It forwards DATA at once, and checks per direction that
 *   `forwarded − consumed (from the reader's ACKs) ≤ the reader's window`; a DATA beyond the window is a protocol
 *   violation and resets the channel. Windows are clamped to `maxWindow`, so the bytes one channel can have queued
 *   in a reader's outbound queue (conn.bufferedBytes()) are ≤ maxWindow whatever the reader does: a slow or
 *   backpressured reader stops ACKing, which stops the writer. This is what bounds memory, since uWS cannot pause
 *   reading a socket.
 * - The server may also open channels itself (`openLocal`), e.g. to push a file to a device.
 * - A malformed frame is answered with RESET (CHANNEL_BAD_FRAME) on the channel it names, or on channel 0, which no
 *   channel uses, when it is too short to name one.
 *
 * The router's host, peer and options types are in router-options.ts; its book-keeping of channels by connection
 * and by session in router-table.ts.
 */
import { aipError, type AipError } from '../../protocol/index.js';
import {
  CHANNEL_HEADER_BYTES,
  ChannelOp,
  decodeChannelFrame,
  encodeAccept,
  encodeAck,
  encodeFin,
  encodeOpen,
  encodeReject,
  encodeReset,
  type ChannelFrame,
  type ChannelKind,
} from '../../protocol/channel.js';
import { ChannelEndpoint, DEFAULT_MAX_CHUNK, DEFAULT_RECEIVE_WINDOW } from './endpoint.js';
import {
  DEFAULT_OPEN_TIMEOUT_MS,
  sendChannelFrame,
  type ChannelHost,
  type ChannelPeer,
  type ChannelRouterOptions,
} from './router-options.js';
import { ChannelTable, clearOpenTimer, FOREIGN, type Chan, type Local, type Relay } from './router-table.js';

export {
  DEFAULT_OPEN_TIMEOUT_MS,
  type ChannelHost,
  type ChannelLifecycle,
  type ChannelPeer,
  type ChannelRouterOptions,
} from './router-options.js';

type Connection = ChannelPeer;

export class ChannelRouter {
  private readonly table: ChannelTable;
  private readonly maxWindow: number;
  private readonly maxPerConn: number;

  constructor(
    private readonly host: ChannelHost,
    private readonly opts: ChannelRouterOptions = {},
  ) {
    this.maxWindow = opts.maxWindow ?? 1024 * 1024;
    this.maxPerConn = opts.maxChannelsPerConnection ?? 64;
    this.table = new ChannelTable(opts);
  }

  /** One channel frame from `conn`. Never throws; bad input is answered with REJECT or RESET. */
  onFrame(conn: Connection, bytes: Uint8Array): void {
    try {
      this.dispatch(conn, bytes);
    } catch (e) {
      this.opts.logger?.error({ err: e, conn: conn.id }, 'channel router failure');
    }
  }

  /** The connection closed: the peer end of each of its channels gets RESET, and all state is freed. */
  onConnectionClosed(conn: Connection): void {
    const entry = this.table.conns.get(conn);
    if (!entry) return;
    for (const ref of [...entry.refs.values()])
      if (ref.chan) this.kill(ref.chan, aipError('CHANNEL_PEER_GONE'), conn);
    this.table.conns.delete(conn);
  }

  /** The session ended: its channels are reset on both sides. */
  onSessionEnded(sessionId: string): void {
    const set = this.table.sessions.get(sessionId);
    if (!set) return;
    for (const chan of [...set]) this.kill(chan, aipError('CHANNEL_SESSION_ENDED', { sid: sessionId }), null);
    this.table.sessions.delete(sessionId);
  }

  /** Live channels, and bytes in flight through them (forwarded, not yet consumed by their readers). */
  stats(): { channels: number; bufferedBytes: number } {
    return this.table.stats();
  }

  /**
   * Reserves an even id on `conn` for a channel another cluster node opened towards this node's client (see
   * foreign-channels.ts): this router will not number one of its own channels so, and the id counts towards the
   * connection's limit (CHANNEL_TOO_MANY when it is reached).
   */
  reserveForeign(conn: Connection): number | AipError {
    const entry = this.table.entry(conn);
    if (entry.refs.size >= this.maxPerConn) return aipError('CHANNEL_TOO_MANY', { max: this.maxPerConn });
    const id = this.table.allocEven(entry);
    entry.refs.set(id, FOREIGN);
    return id;
  }

  /** Frees an id `reserveForeign` gave. */
  releaseForeign(conn: Connection, id: number): void {
    const entry = this.table.conns.get(conn);
    if (entry?.refs.get(id)?.side === 'foreign') entry.refs.delete(id);
  }

  /** The server opens a channel to one party of a session (e.g. a file to the executor). */
  async openLocal(req: {
    sessionId: string;
    party: 'executor' | 'requester';
    kind: ChannelKind;
    params?: Record<string, unknown>;
    receiveWindow?: number;
    /** Aborted while the party has not answered the OPEN: the channel is reset and the open fails. */
    signal?: AbortSignal;
  }): Promise<ChannelEndpoint> {
    const parties = this.host.sessionParties(req.sessionId);
    if (!parties) throw aipError('CHANNEL_SESSION_NOT_LIVE', { sid: req.sessionId });
    const target = req.party === 'executor' ? parties.executorId : parties.requesterId;
    const conn = this.host.connectionOf(target);
    if (!conn || conn.closed) throw aipError('CHANNEL_PEER_NOT_CONNECTED', { id: target });
    const entry = this.table.entry(conn);
    if (entry.refs.size >= this.maxPerConn) throw aipError('CHANNEL_TOO_MANY', { max: this.maxPerConn });
    const full = this.table.sessionFull(req.sessionId);
    if (full) throw full;
    const id = this.table.allocEven(entry);
    const ep = new ChannelEndpoint({
      channel: id,
      send: (f) => sendChannelFrame(conn, f),
      receiveWindow: Math.min(req.receiveWindow ?? DEFAULT_RECEIVE_WINDOW, this.maxWindow),
      maxChunk: DEFAULT_MAX_CHUNK,
      initialState: 'opening',
    });
    const chan: Local = { type: 'local', sessionId: req.sessionId, kind: req.kind, conn, id, ep };
    entry.refs.set(id, { chan, side: 'local' });
    this.table.index(chan);
    ep.onStateChange(() => {
      if (ep.finished) this.table.free(chan);
    });
    ep.sendOpen({ session_id: req.sessionId, kind: req.kind, params: req.params ?? {} });
    // A party that never answers the OPEN fails the open after openTimeoutMs, as a relayed OPEN does.
    const ms = this.opts.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
    const timer = setTimeout(() => ep.reset(aipError('CHANNEL_OPEN_TIMEOUT', { ms })), ms);
    timer.unref();
    const cancel = (): void => ep.reset(aipError('CHANNEL_CANCELLED'));
    req.signal?.addEventListener('abort', cancel, { once: true });
    if (req.signal?.aborted) cancel();
    try {
      await ep.opened();
    } finally {
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', cancel);
    }
    return ep;
  }

  private dispatch(conn: Connection, bytes: Uint8Array): void {
    const d = decodeChannelFrame(bytes);
    if (!d.ok) {
      // A frame too short to name a channel is answered on channel 0, which no channel uses.
      const id =
        bytes.byteLength >= CHANNEL_HEADER_BYTES
          ? new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(2)
          : 0;
      const ref = this.table.conns.get(conn)?.refs.get(id);
      if (ref?.side === 'a' || ref?.side === 'b') this.blame(ref.chan as Relay, ref.side, () => d.error);
      else if (ref?.chan) this.kill(ref.chan, d.error, null);
      else this.send(conn, encodeReset(id, d.error.code, d.error.message));
      return;
    }
    const f = d.value;
    if (f.op === ChannelOp.OPEN) return this.onOpen(conn, f);
    const ref = this.table.conns.get(conn)?.refs.get(f.channel);
    if (!ref) {
      // Late ACK/FIN/RESET after a channel ended are harmless; anything else is answered.
      if (f.op === ChannelOp.DATA || f.op === ChannelOp.ACCEPT || f.op === ChannelOp.REJECT) {
        const e = aipError('CHANNEL_UNKNOWN', { channel: f.channel });
        this.send(conn, encodeReset(f.channel, e.code, e.message));
      }
      return;
    }
    if (ref.side === 'foreign') return; // its node's frames go there before they reach this router
    if (ref.side === 'local') return (ref.chan as Local).ep.handleFrame(f);
    this.onRelayFrame(ref.chan as Relay, ref.side, f, bytes);
  }

  private onOpen(conn: Connection, f: Extract<ChannelFrame, { op: 1 }>): void {
    const refuse = (e: AipError): void => this.send(conn, encodeReject(f.channel, e.code, e.message));
    const sid = f.body.session_id;
    const entry = this.table.conns.get(conn);
    if (f.channel % 2 !== 1 || entry?.refs.has(f.channel))
      return refuse(aipError('CHANNEL_ID_IN_USE', { channel: f.channel }));
    const clientId = this.host.clientIdOf(conn);
    const parties = this.host.sessionParties(sid);
    if (clientId === null) return refuse(aipError('CHANNEL_NOT_AUTHORIZED', { sid }));
    if (!parties) return refuse(aipError('CHANNEL_SESSION_NOT_LIVE', { sid }));
    if (clientId !== parties.requesterId && clientId !== parties.executorId)
      return refuse(aipError('CHANNEL_NOT_AUTHORIZED', { sid }));
    const otherId = clientId === parties.requesterId ? parties.executorId : parties.requesterId;
    if (otherId === clientId) return refuse(aipError('CHANNEL_SELF'));
    const other = this.host.connectionOf(otherId);
    if (!other || other.closed) return refuse(aipError('CHANNEL_PEER_NOT_CONNECTED', { id: otherId }));
    if (other === conn) return refuse(aipError('CHANNEL_SELF'));
    const mine = this.table.entry(conn);
    const theirs = this.table.entry(other);
    if (mine.refs.size >= this.maxPerConn || theirs.refs.size >= this.maxPerConn)
      return refuse(aipError('CHANNEL_TOO_MANY', { max: this.maxPerConn }));
    const full = this.table.sessionFull(sid);
    if (full) return refuse(full);
    const bId = this.table.allocEven(theirs);
    const openerWindow = Math.min(f.window, this.maxWindow);
    const chan: Relay = {
      type: 'relay',
      sessionId: sid,
      kind: f.body.kind,
      a: { conn, id: f.channel, seq: 0, sent: 0, consumed: 0, window: 0, fin: false },
      b: { conn: other, id: bId, seq: 0, sent: 0, consumed: 0, window: openerWindow, fin: false },
      open: false,
      openTimer: null,
    };
    mine.refs.set(f.channel, { chan, side: 'a' });
    theirs.refs.set(bId, { chan, side: 'b' });
    this.table.index(chan);
    this.send(other, encodeOpen(bId, openerWindow, f.body));
    const ms = this.opts.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
    chan.openTimer = setTimeout(() => {
      chan.openTimer = null;
      if (!chan.open) this.kill(chan, aipError('CHANNEL_OPEN_TIMEOUT', { ms }), null);
    }, ms);
    chan.openTimer.unref();
  }

  private onRelayFrame(chan: Relay, side: 'a' | 'b', f: ChannelFrame, raw: Uint8Array): void {
    const me = chan[side];
    const peer = side === 'a' ? chan.b : chan.a;
    const violation = (detail: string): void =>
      this.blame(chan, side, (channel) => aipError('CHANNEL_PROTOCOL', { channel, detail }));
    switch (f.op) {
      case ChannelOp.ACCEPT:
      case ChannelOp.REJECT:
        if (side !== 'b' || chan.open)
          return violation(`unexpected ${f.op === ChannelOp.ACCEPT ? 'ACCEPT' : 'REJECT'}`);
        if (f.op === ChannelOp.REJECT) {
          this.send(peer.conn, encodeReject(peer.id, f.code, f.reason));
          return this.table.free(chan);
        }
        chan.open = true;
        clearOpenTimer(chan);
        peer.window = Math.min(f.window, this.maxWindow);
        return void this.send(peer.conn, encodeAccept(peer.id, peer.window));
      case ChannelOp.DATA: {
        if (!chan.open || me.fin) return violation('DATA outside the open state');
        if (f.payload.byteLength === 0) return violation('empty DATA');
        if (f.seq !== me.seq) return violation(`DATA seq ${f.seq}, expected ${me.seq}`);
        const inFlight = me.sent + f.payload.byteLength - me.consumed;
        if (inFlight > me.window)
          return this.blame(chan, side, (channel) =>
            aipError('CHANNEL_WINDOW_EXCEEDED', { channel, inFlight, window: me.window }),
          );
        me.seq = (me.seq + 1) >>> 0;
        me.sent += f.payload.byteLength;
        // Forward the received bytes with the peer's channel id written in: no re-encode, no 64 KiB copy here
        // (sendRaw hands them to uWS at once, or copies them if it has to queue).
        new DataView(raw.buffer, raw.byteOffset, raw.byteLength).setUint32(2, peer.id);
        return void this.send(peer.conn, raw);
      }
      case ChannelOp.ACK:
        // `me` acknowledges what `peer` wrote.
        if (!chan.open) return violation('ACK before ACCEPT');
        if (f.consumed < peer.consumed || f.consumed > peer.sent)
          return violation(`ACK of ${f.consumed} bytes out of range`);
        peer.consumed = f.consumed;
        peer.window = Math.min(f.window, this.maxWindow);
        return void this.send(peer.conn, encodeAck(peer.id, f.seq, f.consumed, peer.window));
      case ChannelOp.FIN:
        if (!chan.open || me.fin) return violation('unexpected FIN');
        if (f.seq !== me.seq) return violation(`FIN after ${f.seq} frames, sent ${me.seq}`);
        me.fin = true;
        this.send(peer.conn, encodeFin(peer.id, f.seq, f.trailer));
        if (peer.fin) this.table.free(chan);
        return;
      case ChannelOp.RESET:
        this.send(peer.conn, encodeReset(peer.id, f.code, f.reason));
        return this.table.free(chan);
      case ChannelOp.OPEN:
        return; // handled in dispatch
    }
  }

  /**
   * Resets relayed channel `chan`, which the party on `side` broke, and frees it. Each end is told in its own
   * channel id (`make(id)`); the other end is told too that the fault came from the other party, not from it.
   */
  private blame(chan: Relay, side: 'a' | 'b', make: (channel: number) => AipError): void {
    for (const s of ['a', 'b'] as const) {
      const end = chan[s];
      const e = make(end.id);
      const text = s === side ? e.message : `${e.message} (from the other party)`;
      this.send(end.conn, encodeReset(end.id, e.code, text));
    }
    this.table.free(chan);
  }

  /** Resets a channel on every side except `skip` (a closed connection) and frees it. */
  private kill(chan: Chan, err: AipError, skip: Connection | null): void {
    if (chan.type === 'local') {
      if (chan.conn === skip) chan.ep.abort(err);
      else chan.ep.reset(err);
      this.table.free(chan);
      return;
    }
    for (const end of [chan.a, chan.b])
      if (end.conn !== skip) this.send(end.conn, encodeReset(end.id, err.code, err.message));
    this.table.free(chan);
  }

  private send(conn: Connection, frame: Uint8Array): void {
    if (!conn.closed) sendChannelFrame(conn, frame);
  }
}
