/**
 * The records the cluster-wide client directory (src/state/redis-client-directory.ts) keeps in memory: one per
 * client of this node (with its real link and its registration) and one per client of another node in this
 * node's view (with the proxy link made for it, if any).
 */
import type { ClientInfo, ClientLink } from '../client-directory.js';
import type { LocalClientRecord } from '../memory-client-directory.js';
import type { DirectoryEntry } from './directory-entry.js';
import type { RemoteClientLink } from './remote-link.js';

/** One of this node's clients. */
export interface LocalRecord extends ClientInfo {
  readonly conn: ClientLink;
  readonly fence: number;
  readonly incarnation: string;
  /** Fences this same connection held before (claims again after Redis lost its data): frames naming them arrive. */
  readonly pastFences?: readonly number[];
}

/** Another node's client, as this node sees it. */
export interface RemoteRecord extends DirectoryEntry {
  link: RemoteClientLink | null;
  record: LocalClientRecord | null;
}

/** The ClientInfo fields of a record, and nothing else (what an entry stores). */
export function infoOnly(r: ClientInfo): ClientInfo {
  return {
    clientId: r.clientId,
    clientType: r.clientType,
    targetId: r.targetId,
    platform: r.platform,
    metadata: r.metadata,
    systemInfo: r.systemInfo,
    connectedAt: r.connectedAt,
  };
}

/**
 * A local record as one object literal of a fixed shape (as `localRecord` in memory-client-directory.ts): a spread
 * (`{ ...info, conn, ...claimed }`) gave every record a hidden class of its own, about 115 bytes per idle client.
 */
export function clusterRecord(
  info: ClientInfo,
  conn: ClientLink,
  fence: number,
  incarnation: string,
  pastFences: readonly number[] | undefined,
): LocalRecord {
  return {
    clientId: info.clientId,
    clientType: info.clientType,
    targetId: info.targetId,
    platform: info.platform,
    metadata: info.metadata,
    systemInfo: info.systemInfo,
    connectedAt: info.connectedAt,
    conn,
    fence,
    incarnation,
    pastFences,
  };
}
