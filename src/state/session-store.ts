/**
 * Session records: one per session the server runs, with its status history. The store is the one place the
 * HTTP API and any other node read sessions from; a session's runtime (its agent, its pending commands) stays in
 * the process that runs it.
 *
 * Every method is asynchronous so that SQLite, PostgreSQL and Redis implementations can follow as files of their
 * own; each must pass the shared suite in test/state/conformance.ts. Records are values: what a caller gets back
 * is a copy, and changing it changes nothing in the store.
 */

export interface StatusEntry {
  readonly state: string;
  /** ISO-8601 UTC with milliseconds. */
  readonly at: string;
  readonly reason?: string;
}

export interface SessionRecord {
  readonly id: string;
  readonly taskName: string;
  /** The requester: the client that sent the task. */
  readonly ownerId: string;
  /** The device that executes it. */
  readonly executorId: string;
  readonly platform: string;
  readonly mode: string;
  /** The current state: the last entry of `history`. */
  readonly state: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly history: readonly StatusEntry[];
}

export interface SessionFilter {
  readonly ownerId?: string;
  readonly executorId?: string;
  /** Any of these states. */
  readonly states?: readonly string[];
  /** At most this many, oldest first. */
  readonly limit?: number;
}

export interface SessionStore {
  /** Adds a record; resolves false (and changes nothing) if the id exists. */
  create(record: SessionRecord): Promise<boolean>;
  get(id: string): Promise<SessionRecord | null>;
  /** Sets the state, appends it to the history and bumps `updatedAt`. Null if there is no such session. */
  appendStatus(id: string, entry: StatusEntry): Promise<SessionRecord | null>;
  /** Sessions matching every given filter, in creation order. */
  list(filter?: SessionFilter): Promise<SessionRecord[]>;
  delete(id: string): Promise<boolean>;
}

export function matchesFilter(rec: SessionRecord, f: SessionFilter): boolean {
  if (f.ownerId !== undefined && rec.ownerId !== f.ownerId) return false;
  if (f.executorId !== undefined && rec.executorId !== f.executorId) return false;
  if (f.states !== undefined && !f.states.includes(rec.state)) return false;
  return true;
}
