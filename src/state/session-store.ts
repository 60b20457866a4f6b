/**
 * Session records and their event logs, behind one interface. Memory, SQLite and PostgreSQL implement it, and each
 * must pass the shared suite in test/state/session-store-suite.ts.
 *
 * - Every write is atomic with its event: a create, an update and a delete each append exactly one event to the
 *   session's log in the same transaction. Event ids only grow, across all sessions.
 * - Writes are optimistic: `update` names the version it read, and fails (resolves null) if another write came
 *   first; the caller reads again and retries. The store bumps `version` with every update; it never sets
 *   `updated_at`, which the caller (the session service) passes in the changes like any other column.
 * - `update` resolves only the new version and the stored event, never the record: on the hot path the only
 *   writer already knows the record it made, and reading back (or copying) a record whose `task` holds the plan
 *   request would cost more than the write. Read it with `get` when it is wanted.
 * - A resolved write is committed (durable as the implementation documents). Implementations may group writes that
 *   arrive together into one transaction (group commit); callers on the hot path need not await.
 * - Records and events are values: what a caller passes in is copied before the call returns (changing it later
 *   changes nothing stored), and nothing a caller does to what it gets back changes what is stored: what comes
 *   back is the caller's own copy (an event's `data` is parsed from its stored JSON, in every
 *   implementation). Callers should still treat events as read-only: the event feed hands one object to every
 *   listener.
 */
import type { JsonObject, SessionRecord, SessionStatus } from './session-model.js';
import { isStorableText } from '../lib/storable-text.js';

export type { SessionRecord } from './session-model.js';

export interface SessionFilter {
  readonly agent_id?: string;
  /** Any of these statuses. */
  readonly status?: readonly SessionStatus[];
  readonly session_type?: string;
  /** ISO-8601 bounds, exclusive. */
  readonly created_after?: string;
  readonly created_before?: string;
  readonly updated_after?: string;
  readonly updated_before?: string;
  readonly managed_by?: string;
  /** AIP task sessions whose requester is this client. */
  readonly requester?: string;
  /** AIP task sessions executed by this device. */
  readonly executor?: string;
  /** AIP task sessions of this task name. */
  readonly task_name?: string;
}

/** A page of sessions, newest first (created_at, then id, descending). */
export interface PageRequest {
  readonly limit: number;
  /** Opaque: the `next` of the previous page. */
  readonly cursor?: string | null;
}
export interface Page {
  readonly items: SessionRecord[];
  /** The cursor of the next page, or null on the last. */
  readonly next: string | null;
}

/** One entry of a session's event log. */
export interface SessionEvent {
  /** Grows with every event, across all sessions. */
  readonly id: number;
  readonly session_id: string;
  /** `session.created`, `session.updated`, `session.deleted`, `task.started`, `task.commands`, `task.results`, `task.ended`. */
  readonly type: string;
  readonly at: string;
  readonly data: JsonObject;
}
export type NewEvent = Omit<SessionEvent, 'id'>;

/** A page of a log read under a size budget (`SessionStore.eventPage`). */
export interface EventPage {
  readonly events: SessionEvent[];
  /** An event after the last one was left out because it would have taken the page past its budget. */
  readonly cut: boolean;
}

/**
 * Column changes of one update. A key that is absent, or present with the value `undefined`, leaves its column as
 * it is (the SQL stores cannot tell the two apart); `null` is a value (it clears `checkpoint`, `task`,
 * `managed_by`). `version` is not a change: the store bumps it. `updated_at` is set by the caller, here.
 */
export type SessionChanges = Partial<Omit<SessionRecord, 'id' | 'created_at' | 'version'>>;

/** How many sessions have one session type and status (`SessionStore.count`). */
export interface SessionCount {
  readonly session_type: string;
  readonly status: SessionStatus;
  readonly count: number;
}

/** What a committed update resolves: the version the record is at now, and the event stored with the write. */
export interface UpdateResult {
  readonly version: number;
  readonly event: SessionEvent;
}

export interface SessionStore {
  /** Prepares the store (migrations); throws a clear error for a database written by a newer aipd. */
  open(): Promise<void>;
  close(): Promise<void>;
  /** Adds a record and its event; resolves the stored event, or null (and changes nothing) when the id exists. */
  create(record: SessionRecord, event: NewEvent): Promise<SessionEvent | null>;
  get(id: string): Promise<SessionRecord | null>;
  /**
   * Applies `changes` if the record is still at `version` (it is then at `version + 1`); resolves that new version
   * and the stored event, or null (and changes nothing) when the record is missing or moved on. It does not read
   * the record back: `get` it if it is wanted. Updates of one session may be pipelined: each names the version the
   * previous one will have made, and they apply in call order.
   */
  update(id: string, version: number, changes: SessionChanges, event: NewEvent): Promise<UpdateResult | null>;
  /** Deletes a record and appends its event; null if there was none. The log keeps the deletion. */
  delete(id: string, event: NewEvent): Promise<SessionEvent | null>;
  list(filter: SessionFilter, page: PageRequest): Promise<Page>;
  /**
   * How many sessions there are of each session type and status, among those whose status is in `statuses`
   * (committed writes included, as `list`); a pair with none is left out. It reads no record: the metrics scrape
   * calls it, and listing the records (a task's holds its plan) cost tens of ms of event loop per scrape.
   */
  count(statuses: readonly SessionStatus[]): Promise<SessionCount[]>;
  /** Events of the log with no record change (the task's command batches). */
  appendEvents(events: readonly NewEvent[]): Promise<SessionEvent[]>;
  /** A session's events with id > `after`, oldest first. */
  events(sessionId: string, after: number, limit: number): Promise<SessionEvent[]>;
  /** Events of every session with id > `after`, oldest first. */
  allEvents(after: number, limit: number): Promise<SessionEvent[]>;
  /**
   * As `events` (a session's, or with `sessionId` null every session's), but the page also stops before the event
   * whose data would take its total past `maxChars` characters of JSON (the first event is always in), so that a
   * page of large events is not built whole.
   */
  eventPage(sessionId: string | null, after: number, limit: number, maxChars: number): Promise<EventPage>;
}

/** The cursor of a page that ended at `r`. */
export function cursorOf(r: SessionRecord): string {
  return Buffer.from(JSON.stringify([r.created_at, r.id])).toString('base64url');
}

/** [created_at, id] from a cursor, or null when it is not one of ours. */
export function parseCursor(cursor: string): [string, string] | null {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (
      Array.isArray(v) &&
      v.length === 2 &&
      typeof v[0] === 'string' &&
      typeof v[1] === 'string' &&
      isStorableText(v[0]) &&
      isStorableText(v[1])
    )
      return [v[0], v[1]];
  } catch {
    // not ours
  }
  return null;
}

/** Whether `r` matches every given filter (for stores that filter in code). */
export function matchesFilter(r: SessionRecord, f: SessionFilter): boolean {
  if (f.agent_id !== undefined && r.agent_id !== f.agent_id) return false;
  if (f.status !== undefined && !f.status.includes(r.status)) return false;
  if (f.session_type !== undefined && r.session_type !== f.session_type) return false;
  if (f.created_after !== undefined && !(r.created_at > f.created_after)) return false;
  if (f.created_before !== undefined && !(r.created_at < f.created_before)) return false;
  if (f.updated_after !== undefined && !(r.updated_at > f.updated_after)) return false;
  if (f.updated_before !== undefined && !(r.updated_at < f.updated_before)) return false;
  if (f.managed_by !== undefined && r.managed_by !== f.managed_by) return false;
  if (f.requester !== undefined && r.task?.requester !== f.requester) return false;
  if (f.executor !== undefined && r.task?.executor !== f.executor) return false;
  if (f.task_name !== undefined && r.task?.task_name !== f.task_name) return false;
  return true;
}

/** Newest first: created_at, then id, descending. */
export function newestFirst(a: SessionRecord, b: SessionRecord): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** True when `r` comes after the cursor position in newest-first order. */
export function afterCursor(r: SessionRecord, c: [string, string]): boolean {
  return r.created_at < c[0] || (r.created_at === c[0] && r.id < c[1]);
}
