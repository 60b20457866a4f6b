/**
 * What a ChannelRouter (router.ts) is built with and talks to: the peers it sends frames to, the host it asks about
 * sessions and connections, its limits, and the hook told as channels begin and end.
 */
import type { Logger } from 'pino';
import type { ChannelKind } from '../../protocol/channel.js';

/** A party's connection as the router sees it: an identity that frames can be sent to. */
export interface ChannelPeer {
  readonly id: string;
  readonly closed: boolean;
  sendRaw(data: Uint8Array, isBinary: boolean): boolean;
  /**
   * A peer on another cluster node takes the router's frames here, marked as channel frames (other binary frames,
   * such as UFO transfers, must pass that node untouched); a local socket has none, and takes them by sendRaw.
   */
  sendChannel?(frame: Uint8Array): boolean;
}

/** Sends one of the router's channel frames to `conn`. */
export function sendChannelFrame(conn: ChannelPeer, frame: Uint8Array): boolean {
  return conn.sendChannel ? conn.sendChannel(frame) : conn.sendRaw(frame, true);
}

export interface ChannelHost {
  clientIdOf(conn: ChannelPeer): string | null;
  /** The parties of a live session, or null. */
  sessionParties(sessionId: string): { requesterId: string; executorId: string } | null;
  connectionOf(clientId: string): ChannelPeer | null;
}

/** A channel began (relayed OPEN or local open) or ended (any way). */
export type ChannelLifecycle =
  | { type: 'opened'; sessionId: string; kind: ChannelKind }
  | { type: 'closed'; sessionId: string; kind: ChannelKind; bytes: number };

/** `ChannelRouterOptions.openTimeoutMs` when none is given (the server's --channel-open-timeout-ms). */
export const DEFAULT_OPEN_TIMEOUT_MS = 30_000;

export interface ChannelRouterOptions {
  /** Largest window passed on (bytes); bounds what one channel can queue towards a reader. Default 1 MiB. */
  readonly maxWindow?: number;
  /**
   * How long an OPEN may wait for ACCEPT or REJECT: a relayed one before both ends get RESET, the server's own
   * before it is reset and its open fails with CHANNEL_OPEN_TIMEOUT. Default 30 s.
   */
  readonly openTimeoutMs?: number;
  /** Channels one connection may take part in. Default 64. */
  readonly maxChannelsPerConnection?: number;
  /**
   * Channels one session may have open at once, so that one session (an SSM port forward opening stream after
   * stream, say) cannot take all of a device's connection from its other sessions. Default 32.
   */
  readonly maxChannelsPerSession?: number;
  readonly logger?: Logger;
  /** Told when a channel begins and ends. */
  readonly onChannel?: (event: ChannelLifecycle) => void;
}
