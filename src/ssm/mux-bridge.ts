/**
 * Multiplexed port forwarding: the plugin runs an smux v1 client over the data channel's byte stream and this is
 * its server. Each smux stream (SYN … FIN) is one TCP connection to the device's port, over its own `port` data
 * channel, so each connection has its own credit window on the device side.
 *
 * - SYN: a channel opens; data that arrives before it is open waits (counted against the input budget). When
 *   the device cannot connect, the stream gets a FIN and the plugin a Flag ConnectToPortError (3).
 * - PSH: bytes to the connection. FIN: the connection's sending side closes (half close).
 * - Output: each connection's bytes as PSH frames, round robin while the outgoing window has room; the device's
 *   FIN (or a reset) becomes the stream's FIN.
 * - Keepalive: when the plugin runs smux keepalives (old AgentVersion) a NOP goes out every SMUX_KEEPALIVE_MS.
 * - At most MAX_MUX_STREAMS streams at once; a SYN beyond gets a FIN at once.
 */
import { aipError, type AipError } from '../../protocol/index.js';
import type { ChannelEndpoint } from '../channel/endpoint.js';
import { flagOf, flagPayload, PayloadType, PortFlag, type ClientMessage } from './codec.js';
import { encodeSmux, encodeSmuxData, SmuxCmd, SmuxDecoder, type SmuxFrame } from './smux.js';
import { InputMeter, type Bridge, type BridgeHost } from './bridge.js';
import { openPortChannel } from './port-channel.js';

export const MAX_MUX_STREAMS = 256;
/** NOP interval when the plugin's smux keepalive is on (its timeout is 30 s). */
export const SMUX_KEEPALIVE_MS = 10_000;
/** Largest PSH frame sent (the smux default MaxFrameSize). */
export const SMUX_MAX_FRAME_DATA = 32 * 1024;

interface MuxStream {
  readonly id: number;
  ep: ChannelEndpoint | null;
  /** Data that came before the channel opened. */
  early: Uint8Array[];
  /** The plugin closed its side before the channel opened. */
  finEarly: boolean;
  /** FIN sent to the plugin. */
  finSent: boolean;
}

export class MuxBridge implements Bridge {
  private readonly streams = new Map<number, MuxStream>();
  private readonly decoder = new SmuxDecoder();
  private readonly meter: InputMeter;
  private keepalive: NodeJS.Timeout | null = null;
  private closed = false;
  private next = 0;

  constructor(
    private readonly host: BridgeHost,
    private readonly keepaliveOn: boolean,
  ) {
    this.meter = new InputMeter(host.inputMaxBytes, () => host.inputRoom());
  }

  get pendingInput(): number {
    return this.meter.bytes + this.decoder.buffered;
  }

  /** Live smux streams. */
  get streamCount(): number {
    return this.streams.size;
  }

  start(): Promise<void> {
    this.host.remote.capabilities(this.host.live); // throws when the device is offline
    if (this.keepaliveOn) {
      this.keepalive = setInterval(() => this.host.output(encodeSmux(SmuxCmd.NOP, 0)), SMUX_KEEPALIVE_MS);
      this.keepalive.unref();
    }
    return Promise.resolve();
  }

  canTake(m: ClientMessage): boolean {
    return m.payloadType === PayloadType.FLAG || this.meter.open;
  }

  take(m: ClientMessage): void {
    if (m.payloadType === PayloadType.FLAG) {
      if (flagOf(m.payload) === PortFlag.TERMINATE_SESSION) this.host.terminate();
      return;
    }
    if (m.payloadType !== PayloadType.OUTPUT || this.closed) return;
    const frames = this.decoder.push(m.payload);
    if ('error' in frames) return this.host.fail(aipError('SSM_BAD_SMUX', { detail: frames.error }));
    for (const f of frames) this.frame(f);
  }

  private frame(f: SmuxFrame): void {
    const s = this.streams.get(f.streamId);
    switch (f.cmd) {
      case SmuxCmd.SYN:
        if (s) return;
        if (this.streams.size >= MAX_MUX_STREAMS)
          return this.host.output(encodeSmux(SmuxCmd.FIN, f.streamId));
        return this.open(f.streamId);
      case SmuxCmd.PSH:
        if (!s || f.data.byteLength === 0) return;
        if (s.ep) return this.meter.write(s.ep, f.data, () => this.host.remote.touch(this.host.live));
        s.early.push(f.data);
        return;
      case SmuxCmd.FIN:
        if (!s) return;
        if (s.ep) void s.ep.end().catch(() => undefined);
        else s.finEarly = true;
        return;
      default:
        return; // NOP
    }
  }

  private open(id: number): void {
    const s: MuxStream = { id, ep: null, early: [], finEarly: false, finSent: false };
    this.streams.set(id, s);
    openPortChannel(this.host).then(
      (ep) => {
        if (this.closed || this.streams.get(id) !== s) return ep.reset(aipError('CHANNEL_CANCELLED'));
        s.ep = ep;
        for (const d of s.early) this.meter.write(ep, d);
        s.early = [];
        if (s.finEarly) void ep.end().catch(() => undefined);
        ep.onReadable(() => this.pump());
        ep.onStateChange(() => {
          if (ep.state === 'reset') this.pump();
        });
        this.pump();
      },
      (err: AipError) => {
        if (this.closed) return;
        this.host.log.info({ stream: id, err: err.message }, 'smux stream: the device could not connect');
        this.streams.delete(id);
        this.host.output(encodeSmux(SmuxCmd.FIN, id));
        this.host.output(flagPayload(PortFlag.CONNECT_TO_PORT_ERROR), PayloadType.FLAG);
      },
    );
  }

  pump(): void {
    if (this.closed) return;
    const all = [...this.streams.values()].filter((s) => s.ep);
    if (all.length === 0) return;
    // Round robin: start where the last pump stopped so one busy connection cannot starve the others.
    for (let i = 0, idle = 0; idle < all.length && this.host.outputOpen(); i++) {
      const s = all[(this.next + i) % all.length]!;
      if (this.step(s)) idle = 0;
      else idle++;
      this.next = (this.next + i + 1) % all.length;
    }
  }

  /** Moves one chunk of stream `s`'s output; false when it had nothing. */
  private step(s: MuxStream): boolean {
    const ep = s.ep!;
    if (s.finSent) return false;
    let c: Uint8Array | null | undefined;
    try {
      c = ep.take();
    } catch {
      c = null; // reset by the device: the stream ends
    }
    if (c === undefined) return false;
    if (c === null) {
      s.finSent = true;
      this.streams.delete(s.id);
      this.host.output(encodeSmux(SmuxCmd.FIN, s.id));
      if (!ep.finished) void ep.end().catch(() => undefined);
      return true;
    }
    for (const frame of encodeSmuxData(s.id, c, SMUX_MAX_FRAME_DATA)) this.host.output(frame);
    return true;
  }

  close(err: AipError): void {
    this.closed = true;
    if (this.keepalive) clearInterval(this.keepalive);
    for (const s of this.streams.values()) if (s.ep && !s.ep.finished) s.ep.reset(err);
    this.streams.clear();
  }
}
