/**
 * Multiplexed port forwarding: the plugin runs an smux v1 client over the data channel's byte stream and this is
 * its server. Each smux stream (SYN … FIN) is one TCP connection to the device's port, over its own `port` data
 * channel, so each connection has its own credit window on the device side.
 *
 * - SYN: a channel opens; data that arrives before it is open waits, counted against the input budget with the
 *   data written to open channels (at the budget, input is left unacknowledged). When the device cannot
 *   connect, the stream gets a FIN and the plugin a Flag ConnectToPortError (3).
 * - PSH: bytes to the connection. FIN: smux v1 has no half close, the plugin closed the whole stream: the
 *   connection's sending side ends after the data already sent, its output is no longer relayed (it is read and
 *   dropped) and after MUX_FIN_DRAIN_MS the channel is reset.
 * - Output: each connection's bytes as PSH frames, round robin while the outgoing window has room; the device's
 *   FIN (or a reset) becomes the stream's FIN.
 * - Control replies (a FIN for a refused SYN, FIN + Flag 3 for a failed connect, keepalive NOPs) wait in the
 *   bridge and go out from pump() only while the outgoing window has room; while `maxStreams` of them wait,
 *   input is left unacknowledged, so a plugin that stops acking cannot make them pile up.
 * - Keepalive: when the plugin runs smux keepalives (old AgentVersion) a NOP goes out every `keepaliveMs`.
 * - At most `maxStreams` streams at once (--ssm-max-mux-streams); a SYN beyond gets a FIN.
 */
import { aipError, type AipError } from '../../protocol/index.js';
import type { ChannelEndpoint } from '../channel/endpoint.js';
import { flagOf, flagPayload, PayloadType, PortFlag, type ClientMessage } from './codec.js';
import { encodeSmux, encodeSmuxData, SmuxCmd, SmuxDecoder, type SmuxFrame } from './smux.js';
import { InputMeter, type Bridge, type BridgeHost } from './bridge.js';
import { openPortChannel } from './port-channel.js';

/** Default of --ssm-max-mux-streams. */
export const MAX_MUX_STREAMS = 256;
/** Default of --ssm-smux-keepalive-ms: the NOP interval when the plugin's smux keepalive is on (its timeout is 30 s). */
export const SMUX_KEEPALIVE_MS = 10_000;
/** Largest PSH frame sent (the smux default MaxFrameSize). */
export const SMUX_MAX_FRAME_DATA = 32 * 1024;
/** After the plugin's FIN, how long the device connection's last output is read and dropped before a reset. */
export const MUX_FIN_DRAIN_MS = 2_000;

export interface MuxLimits {
  readonly maxStreams: number;
  readonly keepaliveMs: number;
}

interface MuxStream {
  readonly id: number;
  ep: ChannelEndpoint | null;
  /** Data that came before the channel opened, and its bytes. */
  early: Uint8Array[];
  earlyBytes: number;
  /** The plugin closed the stream before the channel opened. */
  finEarly: boolean;
  /** FIN sent to the plugin. */
  finSent: boolean;
}

const noop = (): void => undefined;

export class MuxBridge implements Bridge {
  private readonly streams = new Map<number, MuxStream>();
  private readonly decoder = new SmuxDecoder();
  private readonly meter: InputMeter;
  /** Early bytes of all streams still opening (counted with the meter's). */
  private earlyBytes = 0;
  /** Control replies waiting for the outgoing window: FINs by stream id, Flag 3 count, a keepalive NOP. */
  private readonly finsDue = new Set<number>();
  private flagsDue = 0;
  private nopDue = false;
  /** Connections the plugin closed, their output read and dropped until they end or MUX_FIN_DRAIN_MS pass. */
  private readonly draining = new Map<ChannelEndpoint, NodeJS.Timeout>();
  private keepalive: NodeJS.Timeout | null = null;
  private closed = false;
  private next = 0;

  constructor(
    private readonly host: BridgeHost,
    private readonly keepaliveOn: boolean,
    private readonly limits: MuxLimits = { maxStreams: MAX_MUX_STREAMS, keepaliveMs: SMUX_KEEPALIVE_MS },
  ) {
    this.meter = new InputMeter(host.inputMaxBytes, () => host.inputRoom());
  }

  get pendingInput(): number {
    return this.meter.bytes + this.earlyBytes + this.decoder.buffered;
  }

  /** Rejects (never throws: it runs inside the socket's message handler) when the device is offline. */
  start(): Promise<void> {
    try {
      this.host.remote.capabilities(this.host.live); // throws when the device is offline
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (this.keepaliveOn) {
      this.keepalive = setInterval(() => {
        this.nopDue = true;
        this.pump();
      }, this.limits.keepaliveMs);
      this.keepalive.unref();
    }
    return Promise.resolve();
  }

  canTake(m: ClientMessage): boolean {
    if (m.payloadType === PayloadType.FLAG) return true;
    const inputOpen = this.meter.bytes + this.earlyBytes < this.host.inputMaxBytes;
    return inputOpen && this.finsDue.size + this.flagsDue < this.limits.maxStreams;
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
    if (this.finsDue.size > 0) this.pump();
  }

  private frame(f: SmuxFrame): void {
    const s = this.streams.get(f.streamId);
    switch (f.cmd) {
      case SmuxCmd.SYN:
        if (s) return;
        if (this.streams.size >= this.limits.maxStreams) return void this.finsDue.add(f.streamId);
        return this.open(f.streamId);
      case SmuxCmd.PSH:
        if (!s || s.finEarly || f.data.byteLength === 0) return;
        if (s.ep) return this.meter.write(s.ep, f.data, () => this.host.remote.touch(this.host.live));
        s.early.push(f.data);
        s.earlyBytes += f.data.byteLength;
        this.earlyBytes += f.data.byteLength;
        return;
      case SmuxCmd.FIN:
        if (!s) return;
        if (s.ep) this.retire(s, s.ep);
        else s.finEarly = true;
        return;
      default:
        return; // NOP
    }
  }

  private open(id: number): void {
    const s: MuxStream = { id, ep: null, early: [], earlyBytes: 0, finEarly: false, finSent: false };
    this.streams.set(id, s);
    openPortChannel(this.host).then(
      (ep) => {
        if (this.closed || this.streams.get(id) !== s) return ep.reset(aipError('CHANNEL_CANCELLED'));
        s.ep = ep;
        for (const d of s.early) this.meter.write(ep, d);
        this.earlyBytes -= s.earlyBytes;
        s.early = [];
        s.earlyBytes = 0;
        if (s.finEarly) return this.retire(s, ep);
        ep.onReadable(() => this.pump());
        ep.onStateChange(() => {
          if (ep.state === 'reset') this.pump();
        });
        this.pump();
      },
      (err: AipError) => {
        if (this.closed) return;
        this.host.log.info({ stream: id, err: err.message }, 'smux stream: the device could not connect');
        if (this.streams.get(id) === s) this.streams.delete(id);
        this.earlyBytes -= s.earlyBytes;
        s.early = [];
        s.earlyBytes = 0;
        this.finsDue.add(id);
        this.flagsDue++;
        this.pump();
        this.host.inputRoom();
      },
    );
  }

  /**
   * The plugin closed stream `s` (smux v1 has no half close): the connection ends after what was written to it,
   * its output is dropped, and it is reset if it has not ended within MUX_FIN_DRAIN_MS.
   */
  private retire(s: MuxStream, ep: ChannelEndpoint): void {
    this.streams.delete(s.id);
    void ep.end().catch(noop);
    const done = (): void => {
      const t = this.draining.get(ep);
      if (t) clearTimeout(t);
      this.draining.delete(ep);
    };
    const discard = (): void => {
      try {
        while (ep.take()) continue;
      } catch {
        // reset: nothing more comes
      }
      if (ep.finished) done();
    };
    const timer = setTimeout(() => {
      done();
      ep.reset(aipError('CHANNEL_CANCELLED'));
    }, MUX_FIN_DRAIN_MS);
    timer.unref();
    this.draining.set(ep, timer);
    ep.onReadable(discard);
    ep.onStateChange(discard);
    discard();
  }

  pump(): void {
    if (this.closed) return;
    this.control();
    const all = [...this.streams.values()].filter((s) => s.ep);
    const n = all.length;
    // Round robin: start where the last pump stopped so one busy connection cannot starve the others.
    const start = this.next % Math.max(n, 1);
    for (let i = 0, idle = 0; idle < n && this.host.outputOpen(); i++) {
      const k = (start + i) % n;
      if (this.step(all[k]!)) idle = 0;
      else idle++;
      this.next = (k + 1) % n;
    }
  }

  /** Sends the control replies that wait, while the outgoing window has room. */
  private control(): void {
    for (const id of this.finsDue) {
      if (!this.host.outputOpen()) return;
      this.finsDue.delete(id);
      this.host.output(encodeSmux(SmuxCmd.FIN, id));
    }
    for (; this.flagsDue > 0 && this.host.outputOpen(); this.flagsDue--)
      this.host.output(flagPayload(PortFlag.CONNECT_TO_PORT_ERROR), PayloadType.FLAG);
    if (this.nopDue && this.host.outputOpen()) {
      this.nopDue = false;
      this.host.output(encodeSmux(SmuxCmd.NOP, 0));
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
      if (!ep.finished) void ep.end().catch(noop);
      return true;
    }
    for (const frame of encodeSmuxData(s.id, c, SMUX_MAX_FRAME_DATA)) this.host.output(frame);
    return true;
  }

  close(err: AipError): void {
    this.closed = true;
    if (this.keepalive) clearInterval(this.keepalive);
    for (const s of this.streams.values()) if (s.ep && !s.ep.finished) s.ep.reset(err);
    for (const [ep, t] of this.draining) {
      clearTimeout(t);
      ep.reset(err);
    }
    this.draining.clear();
    this.streams.clear();
    this.earlyBytes = 0;
    this.finsDue.clear();
    this.flagsDue = 0;
  }
}
