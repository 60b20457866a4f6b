/**
 * Who the cluster-wide client directory (src/state/redis-client-directory.ts) tells when another node's client
 * enters or leaves this node's view. A listener that throws is logged; the others still hear of it.
 */
import type { Logger } from '../../logger.js';
import type { ClientLink } from '../client-directory.js';
import type { RemoteRecord } from './directory-records.js';

export class RemoteViewListeners {
  private readonly seenListeners = new Set<(clientId: string) => void>();
  private readonly goneListeners = new Set<(link: ClientLink) => void>();

  constructor(private readonly log: Logger) {}

  /** Adds a listener for clients entering the view; returns what removes it. */
  onSeen(fn: (clientId: string) => void): () => void {
    this.seenListeners.add(fn);
    return () => this.seenListeners.delete(fn);
  }

  /** Adds a listener for clients leaving the view (with their proxy link); returns what removes it. */
  onGone(fn: (link: ClientLink) => void): () => void {
    this.goneListeners.add(fn);
    return () => this.goneListeners.delete(fn);
  }

  /** `r` left the view: told only when a proxy link was made for it. */
  gone(r: RemoteRecord): void {
    if (!r.link) return;
    for (const fn of this.goneListeners) {
      try {
        fn(r.link);
      } catch (err) {
        this.log.error({ err, client_id: r.clientId }, 'directory listener failed');
      }
    }
  }

  /** `clientId` entered the view. */
  seen(clientId: string): void {
    for (const fn of this.seenListeners) {
      try {
        fn(clientId);
      } catch (err) {
        this.log.error({ err, client_id: clientId }, 'directory listener failed');
      }
    }
  }
}
