/**
 * The client directory: which clients are registered, their role, platform and metadata, and how to reach each.
 *
 * "How to reach" is a `ClientLink`. On one node it wraps the client's own connection; in a cluster it can be a
 * proxy that forwards to the node holding the socket. Server code routes every frame through `link(id)` and
 * never touches a socket. A live `client_id` is never overwritten: a duplicate registration is refused and the
 * original connection is left untouched (ufo-aip.md §9.1).
 *
 * `register` and `unregister` are asynchronous so that a shared implementation (Redis) can claim an id
 * atomically; lookups are synchronous, served from the node's own view, because they sit on the hot path.
 */
import { AipError, type ClientType, type ServerMessageInput } from '../../protocol/index.js';

export interface ClientInfo {
  readonly clientId: string;
  readonly clientType: ClientType;
  /** For a constellation: the device it declared at registration, or null. */
  readonly targetId: string | null;
  /** `metadata.platform`, or the server default; checked when a task needs a session for it. */
  readonly platform: string;
  readonly metadata: Record<string, unknown>;
  /** `metadata.system_info`, kept for devices only. */
  readonly systemInfo: Record<string, unknown> | null;
  readonly connectedAt: string;
}

/** A way to reach one registered client. Sends never drop: a backpressured link queues (bounded by its budget). */
export interface ClientLink {
  /** The connection id, for logs. */
  readonly id: string;
  /** True once the client is gone (or closing). */
  readonly closed: boolean;
  /** Encodes an AIP message in the client's codec and sends it. False only when the link is closed. */
  send(msg: ServerMessageInput): boolean;
  /** Sends pre-encoded bytes or text (relayed transfers, channel frames). */
  sendRaw(data: string | Uint8Array, isBinary: boolean): boolean;
  /** Bytes accepted for this client but not yet written to its socket. */
  bufferedBytes(): number;
  close(code: number, reason: string): void;
}

export interface DirectoryStats {
  total: number;
  device_clients: number;
  constellation_clients: number;
}

export interface ClientDirectory {
  /**
   * Adds a client; resolves false (and changes nothing) if the id is registered anywhere. A cluster directory
   * may reject with CLUSTER_UNAVAILABLE or CLUSTER_NODE_FENCED (see `isClusterRefusal`): the client may retry.
   */
  register(info: ClientInfo, link: ClientLink): Promise<boolean>;
  /** Removes the client only if `link` is still the one registered under its id. */
  unregister(clientId: string, link: ClientLink): Promise<boolean>;
  get(clientId: string): ClientInfo | undefined;
  /** How to reach a registered client, or undefined when it is not registered. */
  link(clientId: string): ClientLink | undefined;
  /** True when the client's socket is on this node (always, for a directory of one node). */
  isLocal(clientId: string): boolean;
  /** The client registered on `link`, if any. */
  clientOf(link: ClientLink): ClientInfo | undefined;
  /** Every registered id, of either role, in registration order. */
  list(): string[];
  stats(): DirectoryStats;
  all(): Iterable<ClientInfo>;
}

/** True when `clientId` is a registered device. */
export function isDevice(dir: ClientDirectory, clientId: string): boolean {
  return dir.get(clientId)?.clientType === 'device';
}

/** A registered device's `system_info`, or null. */
export function deviceSystemInfo(dir: ClientDirectory, clientId: string): Record<string, unknown> | null {
  const rec = dir.get(clientId);
  return rec?.clientType === 'device' ? rec.systemInfo : null;
}

/** True when a `register` was refused by the cluster (Redis unreachable, this node fenced or draining), not by a bug. */
export function isClusterRefusal(err: unknown): err is AipError {
  return (
    err instanceof AipError &&
    (err.kind === 'CLUSTER_NODE_FENCED' ||
      err.kind === 'CLUSTER_UNAVAILABLE' ||
      err.kind === 'CLUSTER_DRAINING')
  );
}
