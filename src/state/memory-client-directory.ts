/**
 * The in-process client directory: one node's clients, each reached through its own connection's link.
 * This is the only place that holds a client's connection (`conn`).
 */
import type { ClientDirectory, ClientInfo, ClientLink, DirectoryStats } from './client-directory.js';

/** A local record: the client's info plus its connection's link. */
export interface LocalClientRecord extends ClientInfo {
  readonly conn: ClientLink;
}

export class MemoryClientDirectory implements ClientDirectory {
  private readonly clients = new Map<string, LocalClientRecord>();
  private readonly byLink = new Map<ClientLink, LocalClientRecord>();

  register(info: ClientInfo, link: ClientLink): Promise<boolean> {
    return Promise.resolve(this.registerNow(info, link));
  }

  /** The synchronous form, for callers on this node. */
  registerNow(info: ClientInfo, link: ClientLink): boolean {
    if (this.clients.has(info.clientId)) return false;
    const rec = localRecord(info, link);
    this.clients.set(info.clientId, rec);
    this.byLink.set(link, rec);
    return true;
  }

  unregister(clientId: string, link: ClientLink): Promise<boolean> {
    return Promise.resolve(this.unregisterNow(clientId, link));
  }

  unregisterNow(clientId: string, link: ClientLink): boolean {
    const rec = this.clients.get(clientId);
    if (!rec || rec.conn !== link) return false;
    this.clients.delete(clientId);
    this.byLink.delete(link);
    return true;
  }

  get(clientId: string): LocalClientRecord | undefined {
    return this.clients.get(clientId);
  }

  isLocal(clientId: string): boolean {
    return this.get(clientId) !== undefined;
  }

  link(clientId: string): ClientLink | undefined {
    return this.clients.get(clientId)?.conn;
  }

  clientOf(link: ClientLink): LocalClientRecord | undefined {
    return this.byLink.get(link);
  }

  list(): string[] {
    return [...this.clients.keys()];
  }

  stats(): DirectoryStats {
    let devices = 0;
    for (const rec of this.clients.values()) if (rec.clientType === 'device') devices++;
    return {
      total: this.clients.size,
      device_clients: devices,
      constellation_clients: this.clients.size - devices,
    };
  }

  all(): IterableIterator<LocalClientRecord> {
    return this.clients.values();
  }
}

/**
 * The record as one object literal of a fixed shape: a spread (`{ ...info, conn }`) gave every record a hidden class
 * of its own here (about 115 bytes per idle client, seen in heap snapshots at 10,000 clients).
 */
export function localRecord(info: ClientInfo, link: ClientLink): LocalClientRecord {
  return {
    clientId: info.clientId,
    clientType: info.clientType,
    targetId: info.targetId,
    platform: info.platform,
    metadata: info.metadata,
    systemInfo: info.systemInfo,
    connectedAt: info.connectedAt,
    conn: link,
  };
}
