/**
 * Committed session events, in commit order, to whoever listens in this process: SSE streams and the Redis
 * publisher. An event reaches the feed only after the store has committed it, with its id.
 */
import type { SessionEvent } from '../state/session-store.js';

export type FeedListener = (event: SessionEvent) => void;

export class EventFeed {
  private readonly listeners = new Set<FeedListener>();

  constructor(private readonly onError: (err: unknown) => void = () => undefined) {}

  subscribe(listener: FeedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get size(): number {
    return this.listeners.size;
  }

  publish(event: SessionEvent): void {
    // Most events of the hot path have no listener: no copy of the set for them.
    if (this.listeners.size === 0) return;
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch (err) {
        this.onError(err);
      }
    }
  }
}
