/**
 * What a transport offers the server, whichever it is (uWS on a port, or the in-memory twin): WebSocket
 * connections on the paths in WS_PATHS and HTTP on everything else, with the same options and the same guarantees.
 */
import type { Logger } from '../logger.js';
import type { Connection, SocketHandler } from './connection.js';
import type { HttpHandler, HttpRequestHead } from './http.js';

/** The paths a WebSocket may be opened on (uWS patterns): AIP, a remote session's stream and its SSM data channel. */
export const WS_PATHS = ['/ws', '/sessions/:id/stream', '/sessions/:id/ssm'] as const;
export type WsPath = (typeof WS_PATHS)[number];

/** The pattern of WS_PATHS a request path is on, or null. */
export function wsPathOf(path: string): WsPath | null {
  if (path === '/ws') return '/ws';
  const m = /^\/sessions\/[^/]+\/(stream|ssm)$/.exec(path);
  return m ? (`/sessions/:id/${m[1]}` as WsPath) : null;
}

/** The largest inbound frame on `path` (a request path). */
export function maxPayloadOn(limits: TransportLimits, path: string): number {
  const pattern = wsPathOf(path);
  return (pattern && limits.maxPayloadBytesByPath?.[pattern]) ?? limits.maxPayloadBytes;
}

/** The server's answer to a WebSocket upgrade request. */
export type UpgradeDecision =
  { accept: true; protocol: string | null } | { accept: false; status: number; body: string };

export interface TransportLimits {
  /** Largest inbound WebSocket frame. */
  readonly maxPayloadBytes: number;
  /**
   * Largest inbound frame on a path of WS_PATHS (its pattern) where it is not `maxPayloadBytes`: a stream socket's
   * frames are small, and it holds one before it has authenticated.
   */
  readonly maxPayloadBytesByPath?: Readonly<Partial<Record<WsPath, number>>>;
  readonly idleTimeoutSec: number;
  /** Outbound bytes a connection may have queued before it counts as a slow consumer. */
  readonly outboundBudgetBytes: number;
  /** How long a connection may stay over budget before it is closed (4008). */
  readonly slowConsumerTimeoutMs: number;
  /** Over budget × this factor, a connection is closed at once. */
  readonly slowConsumerHardCap: number;
  /**
   * The largest frame the application sends whole (a command relaying a client's largest message): the immediate
   * close also needs this plus the budget. Default `maxPayloadBytes`.
   */
  readonly largestOutboundFrameBytes?: number;
  /** Bytes the socket layer may hold for a connection before frames wait in our own queue. */
  readonly highWaterMarkBytes: number;
  /** Largest HTTP request body. */
  readonly maxHttpBodyBytes: number;
  /** HTTP body bytes being read across all connections at once; past it a request gets 503. */
  readonly maxHttpBodyBytesInFlight: number;
}

export interface TransportOptions {
  readonly host: string;
  readonly port: number;
  readonly limits: TransportLimits;
  readonly log: Logger;
  /** Decides an upgrade from its head (its path, and `sec-websocket-protocol` as the offer). */
  acceptUpgrade(req: HttpRequestHead): UpgradeDecision;
  onConnection(conn: Connection): SocketHandler;
  /** A connection's outbound buffer went over (true) or back under (false) its budget. */
  onBackpressure?(conn: Connection, over: boolean, bufferedBytes: number): void;
  readonly http: HttpHandler;
}

export interface Transport {
  readonly port: number;
  /** Stops accepting connections (the listen socket closes; open sockets stay). */
  stopListening(): void;
  /** Force-closes everything. */
  closeAll(): void;
  connections(): Iterable<Connection>;
}
