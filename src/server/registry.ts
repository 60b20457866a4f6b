/**
 * The registry of registered clients (ufo-aip.md §9.1). A live `client_id` is never overwritten:
 * a duplicate registration is refused and the original connection is left untouched.
 */
import type { ClientType } from '../../protocol/index.js';
import type { Connection } from '../transport/connection.js';

export interface ClientRecord {
  readonly clientId: string;
  readonly clientType: ClientType;
  /** For a constellation: the device it declared at registration, or null. */
  readonly targetId: string | null;
  /** `metadata.platform`, or the server default; checked when a task needs a session for it. */
  readonly platform: string;
  readonly conn: Connection;
  readonly metadata: Record<string, unknown>;
  /** `metadata.system_info`, kept for devices only. */
  readonly systemInfo: Record<string, unknown> | null;
  readonly connectedAt: string;
}

export class ClientRegistry {
  private readonly clients = new Map<string, ClientRecord>();
  private readonly byConn = new Map<Connection, ClientRecord>();

  /** Adds a client; returns false (and changes nothing) if the id is already registered. */
  add(record: ClientRecord): boolean {
    if (this.clients.has(record.clientId)) return false;
    this.clients.set(record.clientId, record);
    this.byConn.set(record.conn, record);
    return true;
  }

  /** Removes the client only if `conn` is still the one registered under its id. */
  remove(clientId: string, conn: Connection): boolean {
    const rec = this.clients.get(clientId);
    if (!rec || rec.conn !== conn) return false;
    this.clients.delete(clientId);
    this.byConn.delete(conn);
    return true;
  }

  /** The registered client on `conn`, if any. */
  recordOf(conn: Connection): ClientRecord | undefined {
    return this.byConn.get(conn);
  }

  get(clientId: string): ClientRecord | undefined {
    return this.clients.get(clientId);
  }

  isDeviceConnected(clientId: string): boolean {
    return this.clients.get(clientId)?.clientType === 'device';
  }

  deviceSystemInfo(clientId: string): Record<string, unknown> | null {
    const rec = this.clients.get(clientId);
    return rec?.clientType === 'device' ? rec.systemInfo : null;
  }

  /** Every registered id, of either role, in registration order. */
  list(): string[] {
    return [...this.clients.keys()];
  }

  stats(): { total: number; device_clients: number; constellation_clients: number } {
    let devices = 0;
    for (const rec of this.clients.values()) if (rec.clientType === 'device') devices++;
    return { total: this.clients.size, device_clients: devices, constellation_clients: this.clients.size - devices };
  }

  all(): IterableIterator<ClientRecord> {
    return this.clients.values();
  }
}
