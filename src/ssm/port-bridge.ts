/**
 * Port forwarding without multiplexing: one TCP connection to the device's port at a time, over a `port` channel.
 *
 * - basic (`LocalPortForwarding` with an old AgentVersion): the plugin serves one local client at a time. The
 *   device connection opens when the data channel does, and again after each Flag DisconnectToPort (the local
 *   client went away: the device connection is closed and a fresh one opened for the next client). If the
 *   device's side closes first, input is discarded until the next DisconnectToPort (SSM has no way to tell the
 *   plugin to drop its local client). A DisconnectToPort while the fresh connection is still opening changes
 *   nothing (no input can have gone to it yet); a connection that is no longer the current one is reset.
 * - stdio (any other `type`, e.g. an SSH ProxyCommand): one connection; when the device closes it the plugin
 *   gets `channel_closed` and exits.
 *
 * Flag TerminateSession ends the session. No Flag is ever sent to the plugin here: in these modes it would write
 * it into the local stream as data.
 */
import { aipError, type AipError } from '../../protocol/index.js';
import type { ChannelEndpoint } from '../channel/endpoint.js';
import { flagOf, PayloadType, PortFlag, type ClientMessage } from './codec.js';
import { InputMeter, type Bridge, type BridgeHost } from './bridge.js';
import { openPortChannel } from './port-channel.js';

export class PortBridge implements Bridge {
  private ep: ChannelEndpoint | null = null;
  /** Counts connection attempts: an open that finishes after a newer one started is reset. */
  private generation = 0;
  private connecting = false;
  /** The device closed its side; input goes nowhere until the next DisconnectToPort. */
  private deviceDone = false;
  private closed = false;
  private readonly meter: InputMeter;

  constructor(
    private readonly host: BridgeHost,
    private readonly mode: 'basic' | 'stdio',
  ) {
    this.meter = new InputMeter(host.inputMaxBytes, () => host.inputRoom());
  }

  get pendingInput(): number {
    return this.meter.bytes;
  }

  async start(): Promise<void> {
    const gen = ++this.generation;
    this.connecting = true;
    let ep: ChannelEndpoint;
    try {
      ep = await openPortChannel(this.host);
    } finally {
      if (gen === this.generation) this.connecting = false;
    }
    if (this.closed || gen !== this.generation) return ep.reset(aipError('CHANNEL_CANCELLED'));
    this.ep = ep;
    this.deviceDone = false;
    ep.onReadable(() => this.pump());
    ep.onStateChange(() => {
      if (ep.state !== 'reset' || this.ep !== ep || this.closed) return;
      const err = ep.error ?? aipError('CHANNEL_CANCELLED');
      // A reset is not an end: in stdio mode the plugin is told why, and in basic mode a device that went away
      // fails the session (its next connection could not open), where a service that reset its connection is
      // one more connection closed (the plugin's DisconnectToPort opens the next).
      if (this.mode === 'basic' && err.kind !== 'CHANNEL_PEER_GONE') return this.deviceClosed();
      this.closed = true;
      this.host.fail(err);
    });
  }

  canTake(m: ClientMessage): boolean {
    if (m.payloadType === PayloadType.FLAG) return true;
    return this.deviceDone || (this.ep !== null && this.meter.open);
  }

  take(m: ClientMessage): void {
    if (m.payloadType === PayloadType.FLAG) return this.flag(flagOf(m.payload));
    if (m.payloadType !== PayloadType.OUTPUT || m.payload.byteLength === 0) return;
    if (this.ep && !this.deviceDone)
      this.meter.write(this.ep, m.payload.slice(), () => this.host.remote.touch(this.host.live));
  }

  private flag(flag: number | null): void {
    if (flag === PortFlag.TERMINATE_SESSION) return this.host.terminate();
    if (flag !== PortFlag.DISCONNECT_TO_PORT || this.mode !== 'basic' || this.closed) return;
    if (this.connecting) return; // the connection on its way is already a fresh one
    const old = this.ep;
    this.ep = null;
    this.deviceDone = false; // input now waits (unacked) for the next connection
    old?.reset(aipError('CHANNEL_CANCELLED'));
    this.start().then(
      () => {
        this.pump();
        this.host.inputRoom(); // input kept while the connection opened may go on
      },
      (err: AipError) => this.host.fail(err),
    );
  }

  pump(): void {
    const ep = this.ep;
    if (!ep || this.closed || this.deviceDone) return;
    while (this.host.outputOpen()) {
      let c: Uint8Array | null | undefined;
      try {
        c = ep.take();
      } catch {
        return;
      }
      if (c === undefined) return;
      if (c === null) return this.deviceClosed();
      if (c.byteLength > 0) this.host.output(c);
    }
  }

  private deviceClosed(): void {
    if (this.deviceDone || this.closed) return;
    this.deviceDone = true;
    if (this.mode === 'stdio') {
      this.closed = true;
      this.host.finish('');
    }
  }

  close(err: AipError): void {
    this.closed = true;
    this.generation++;
    if (this.ep && !this.ep.finished) this.ep.reset(err);
  }
}
