/**
 * What connects an SSM data channel to the device: a bridge takes the plugin's in-order input messages and moves
 * the device's output back, through aipd's data channels (src/channel/), so their credit windows hold end to end.
 * Three bridges: a shell or command in a PTY (shell-bridge.ts), one TCP connection at a time (port-bridge.ts,
 * basic and stdio forwarding) and smux streams (mux-bridge.ts).
 */
import type { ChannelEndpoint } from '../channel/endpoint.js';
import type { Logger } from '../logger.js';
import type { LiveRemote, RemoteSessions } from '../remote/remote-sessions.js';
import { AipError, aipError } from '../../protocol/index.js';
import type { ClientMessage } from './codec.js';

/** The session side a bridge talks to. */
export interface BridgeHost {
  readonly live: LiveRemote;
  readonly remote: RemoteSessions;
  readonly log: Logger;
  /** Input bytes that may wait for the device's credit (beyond it, input is left unacknowledged). */
  readonly inputMaxBytes: number;
  /** Whether the outgoing window has room (else the bridge leaves output in the device channel). */
  outputOpen(): boolean;
  /** Output for the plugin, cut into messages of the chunk size. */
  output(bytes: Uint8Array, payloadType?: number): void;
  /** The bridge is over: send the plugin `channel_closed` with `output` (empty: none) once the output is acked. */
  finish(output: string, then?: () => void): void;
  /** A failure: `channel_closed` with the error's text at once. */
  fail(err: AipError): void;
  /** The plugin asked to end the session (Flag TerminateSession). */
  terminate(): void;
  /** The device took input: kept input may go on. */
  inputRoom(): void;
}

export interface Bridge {
  /** Opens what the bridge needs on the device (throws an AipError when it cannot). */
  start(): Promise<void>;
  /**
   * Whether the expected input message can be taken now (false: it waits in the session's out-of-order buffer,
   * acked, or unacked while that is full, and is offered again once the bridge has room).
   */
  canTake(m: ClientMessage): boolean;
  /** One input message, in sequence order. */
  take(m: ClientMessage): void;
  /** Moves output from the device while the window has room. */
  pump(): void;
  /** Resets everything the bridge opened. */
  close(err: AipError): void;
  /** Input bytes waiting for the device's credit. */
  readonly pendingInput: number;
}

/** Counts input bytes written to channels and not yet taken by the device. */
export class InputMeter {
  private pending = 0;

  constructor(
    private readonly max: number,
    /** Told when bytes were taken by the device, or dropped with their channel (input that waited may go on). */
    private readonly room: () => void = () => undefined,
  ) {}

  get bytes(): number {
    return this.pending;
  }

  /** Whether more input may be taken (the last message may go over by its own size). */
  get open(): boolean {
    return this.pending < this.max;
  }

  /** Writes `bytes` to `ep`; the count goes down once the device's credit took them. */
  write(ep: ChannelEndpoint, bytes: Uint8Array, done?: () => void): void {
    this.pending += bytes.byteLength;
    ep.write(bytes).then(
      () => {
        this.pending -= bytes.byteLength;
        done?.();
        this.room();
      },
      () => {
        // The channel is gone (reset): its bytes no longer count, and input held for other streams may go on.
        this.pending -= bytes.byteLength;
        this.room();
      },
    );
  }
}

/** Anything thrown, as an AipError (a non-AipError is a bug: it becomes CHANNEL_REJECTED with its text). */
export function asAipError(err: unknown): AipError {
  return err instanceof AipError ? err : aipError('CHANNEL_REJECTED', { reason: String(err) });
}
