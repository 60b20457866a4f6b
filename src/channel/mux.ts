/**
 * The channel multiplexer of one WebSocket peer (a controller or a device; the server side is router.ts).
 *
 * It allocates channel ids (clients odd, the server even), routes incoming channel frames to endpoints, hands
 * incoming OPENs to `onOpen`, and resets everything when the connection drops. Feed it every binary frame whose
 * first byte is 0xC1 (`isChannelFrame`); give it a `send` that puts a binary frame on the socket.
 */
import { aipError, type AipError } from '../../protocol/index.js';
import {
  ChannelOp,
  decodeChannelFrame,
  encodeReset,
  type ChannelKind,
  type OpenBody,
} from '../../protocol/channel.js';
import { ChannelEndpoint, DEFAULT_MAX_CHUNK, DEFAULT_RECEIVE_WINDOW } from './endpoint.js';

export interface IncomingChannel {
  readonly channel: number;
  readonly sessionId: string;
  readonly kind: ChannelKind;
  readonly params: Record<string, unknown>;
  /** Accepts: returns the open endpoint (data may be written at once). */
  accept(): ChannelEndpoint;
  reject(err: AipError): void;
}

export interface ChannelMuxOptions {
  /** Sends one binary WebSocket frame; false when the socket is closed. */
  readonly send: (frame: Uint8Array) => boolean;
  /** 'client' allocates odd ids (controllers, devices); 'server' even ids. */
  readonly side?: 'client' | 'server';
  readonly receiveWindow?: number;
  readonly maxChunk?: number;
  /** Incoming OPENs; without a handler every OPEN is rejected. */
  readonly onOpen?: (incoming: IncomingChannel) => void;
}

export class ChannelMux {
  private readonly endpoints = new Map<number, ChannelEndpoint>();
  private nextId: number;
  private readonly receiveWindow: number;
  private readonly maxChunk: number;

  constructor(private readonly opts: ChannelMuxOptions) {
    this.nextId = opts.side === 'server' ? 2 : 1;
    this.receiveWindow = opts.receiveWindow ?? DEFAULT_RECEIVE_WINDOW;
    this.maxChunk = opts.maxChunk ?? DEFAULT_MAX_CHUNK;
  }

  /** Live channels. */
  get size(): number {
    return this.endpoints.size;
  }

  /** Opens a channel in `body.session_id`; resolves with the endpoint once ACCEPTed, rejects on REJECT. */
  async open(
    body: { session_id: string; kind: ChannelKind; params?: Record<string, unknown> },
    receiveWindow?: number,
  ): Promise<ChannelEndpoint> {
    const id = this.nextId;
    this.nextId = (this.nextId + 2) >>> 0;
    const ep = this.track(
      new ChannelEndpoint({
        channel: id,
        send: this.opts.send,
        receiveWindow: receiveWindow ?? this.receiveWindow,
        maxChunk: this.maxChunk,
        initialState: 'opening',
      }),
    );
    const full: OpenBody = { session_id: body.session_id, kind: body.kind, params: body.params ?? {} };
    ep.sendOpen(full);
    await ep.opened();
    return ep;
  }

  /** Feeds one channel frame from the socket. Never throws. */
  handleFrame(bytes: Uint8Array): void {
    const d = decodeChannelFrame(bytes);
    if (!d.ok) return;
    const f = d.value;
    if (f.op === ChannelOp.OPEN) {
      if (this.endpoints.has(f.channel)) {
        const e = aipError('CHANNEL_ID_IN_USE', { channel: f.channel });
        this.opts.send(encodeReset(f.channel, e.code, e.message));
        return;
      }
      const ep = this.track(
        new ChannelEndpoint({
          channel: f.channel,
          send: this.opts.send,
          receiveWindow: this.receiveWindow,
          maxChunk: this.maxChunk,
          initialState: 'open',
          sendWindow: f.window,
        }),
      );
      const incoming: IncomingChannel = {
        channel: f.channel,
        sessionId: f.body.session_id,
        kind: f.body.kind,
        params: f.body.params,
        accept: () => {
          ep.accept();
          return ep;
        },
        reject: (err) => ep.reject(err),
      };
      if (!this.opts.onOpen)
        return incoming.reject(aipError('CHANNEL_KIND_UNSUPPORTED', { kind: f.body.kind }));
      try {
        this.opts.onOpen(incoming);
      } catch (e) {
        incoming.reject(aipError('CHANNEL_REJECTED', { reason: e instanceof Error ? e.message : String(e) }));
      }
      return;
    }
    const ep = this.endpoints.get(f.channel);
    if (ep) return ep.handleFrame(f);
    if (f.op === ChannelOp.DATA) {
      const e = aipError('CHANNEL_UNKNOWN', { channel: f.channel });
      this.opts.send(encodeReset(f.channel, e.code, e.message));
    }
  }

  /** The connection is gone: every channel fails with `err`. */
  closeAll(err: AipError = aipError('CHANNEL_PEER_GONE')): void {
    for (const ep of [...this.endpoints.values()]) ep.abort(err);
    this.endpoints.clear();
  }

  private track(ep: ChannelEndpoint): ChannelEndpoint {
    this.endpoints.set(ep.channel, ep);
    ep.onStateChange(() => {
      if (ep.finished) this.endpoints.delete(ep.channel);
    });
    return ep;
  }
}
