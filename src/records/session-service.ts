/**
 * The session service: every read and write of a session record goes through here, whether it comes from REST or
 * from an AIP task this node runs. It owns the status transition table, JSON Merge Patch of `context`, and the
 * rule that each create, update and delete is exactly one event, committed with it.
 *
 * Writes of one session are pipelined: the service keeps the version it last issued and the store applies updates
 * in order, so the hot path never waits for a commit. A write that finds the record moved on (another node wrote
 * it) is retried on a fresh read. Live sessions stay in the cache (`pin`); others leave it once their writes land.
 * The cache and the write path are in session-writes.ts.
 */
import { aipError, type AipError } from '../../protocol/index.js';
import type { Logger } from '../logger.js';
import {
  STATUS_TRANSITIONS,
  type JsonObject,
  type RuntimeBackend,
  type SessionRecord,
  type SessionStatus,
  type StatusEntry,
} from '../state/session-model.js';
import type {
  NewEvent,
  Page,
  PageRequest,
  SessionChanges,
  EventPage,
  SessionEvent,
  SessionFilter,
  SessionStore,
} from '../state/session-store.js';
import { isoNow } from '../lib/iso-now.js';
import { jsonLengthAtMost } from '../lib/json-bound.js';
import { EventFeed } from './event-feed.js';
import { mergePatch } from './merge-patch.js';
import { SessionWrites, type Mutation } from './session-writes.js';

export { applyChanges, type Mutation } from './session-writes.js';

/** What a client may set at create. */
export interface CreateInput {
  readonly id?: string;
  readonly agent_id: string;
  readonly session_type: string;
  readonly status?: SessionStatus;
  readonly context?: JsonObject;
  readonly checkpoint?: JsonObject | null;
  readonly runtime_backend?: RuntimeBackend;
  readonly runtime_metadata?: JsonObject;
}

/** What PATCH may change; `context` is merged (RFC 7396), the rest replaced. */
export interface PatchInput {
  readonly status?: SessionStatus;
  /** Recorded in the status history with a status change. */
  readonly reason?: string;
  readonly context?: JsonObject;
  readonly checkpoint?: JsonObject | null;
  readonly runtime_backend?: RuntimeBackend;
  readonly runtime_metadata?: JsonObject;
}

/** The default of `--event-page-max-bytes`: event data one page of a log read over the API holds at most. */
export const DEFAULT_EVENT_PAGE_MAX_BYTES = 8 * 1024 * 1024;

export interface SessionServiceOptions {
  /** Event payloads larger than this (as JSON) are replaced by a note of their size; a task's results are kept. */
  readonly maxEventDataBytes: number;
  /**
   * Characters of event data (JSON) one page of a log read over the API may hold (`--event-page-max-bytes`); the
   * first event of a page is always in. Default `DEFAULT_EVENT_PAGE_MAX_BYTES`.
   */
  readonly eventPageMaxChars?: number;
  readonly clock?: () => Date;
  /**
   * Writes of one record wait for the one before it to commit instead of being pipelined on a predicted version.
   * In a cluster another node may write a record this node has pinned (marking it crashed when this node's lease
   * expired): a pipelined write predicted on a version the other write also made would then apply on top of it.
   */
  readonly serialWrites?: boolean;
}

/** Event types whose payload is recovery data, never truncated. */
const KEPT_WHOLE = new Set(['task.results']);

export class SessionService {
  readonly feed: EventFeed;
  /** The record cache and the one write path. */
  private readonly writes: SessionWrites;

  private readonly clock: (() => Date) | null;

  constructor(
    readonly store: SessionStore,
    private readonly log: Logger,
    private readonly opts: SessionServiceOptions,
  ) {
    this.clock = opts.clock ?? null;
    this.feed = new EventFeed((err) => log.error({ err }, 'session event listener failed'));
    this.writes = new SessionWrites(store, opts.serialWrites ?? false, {
      now: () => this.now(),
      event: (sessionId, type, data, at) => this.event(sessionId, type, data, at),
      publish: (event) => this.feed.publish(event),
    });
  }

  now(): string {
    return this.clock ? this.clock().toISOString() : isoNow();
  }

  /** Creates a record (REST, or a task with `managed_by` and `task` set). Throws SESSION_EXISTS. */
  async create(record: SessionRecord, data: JsonObject = {}): Promise<SessionRecord> {
    const event = await this.store.create(record, this.event(record.id, 'session.created', data));
    if (!event) throw aipError('SESSION_EXISTS', { id: record.id });
    this.feed.publish(event);
    this.writes.created(record);
    return record;
  }

  /** A new record from client input, with defaults. */
  recordFrom(input: CreateInput, id: string): SessionRecord {
    const at = this.now();
    const status = input.status ?? 'active';
    return {
      id,
      agent_id: input.agent_id,
      session_type: input.session_type,
      status,
      context: input.context ?? {},
      checkpoint: input.checkpoint ?? null,
      runtime_backend: input.runtime_backend ?? 'unknown',
      runtime_metadata: input.runtime_metadata ?? {},
      created_at: at,
      updated_at: at,
      status_history: [{ status, at }],
      task: null,
      managed_by: null,
      version: 0,
    };
  }

  async get(id: string): Promise<SessionRecord | null> {
    const current = this.writes.settled(id);
    if (current) return structuredClone(current);
    return this.store.get(id);
  }

  list(filter: SessionFilter, page: PageRequest): Promise<Page> {
    return this.store.list(filter, page);
  }

  /** PATCH: validates the status change against the table (409 names both states). Throws HTTP_SESSION_NOT_FOUND. */
  patch(id: string, input: PatchInput): Promise<SessionRecord> {
    return this.write(id, (cur) => {
      const changes: { -readonly [K in keyof SessionChanges]: SessionChanges[K] } = {};
      const updates: string[] = [];
      if (input.status !== undefined && input.status !== cur.status) {
        Object.assign(changes, this.statusChange(cur, input.status, input.reason));
        updates.push('status');
      }
      if (input.context !== undefined) {
        changes.context = mergePatch(cur.context, input.context) as JsonObject;
        updates.push('context');
      }
      if (input.checkpoint !== undefined) {
        changes.checkpoint = input.checkpoint;
        updates.push('checkpoint');
      }
      if (input.runtime_backend !== undefined) {
        changes.runtime_backend = input.runtime_backend;
        updates.push('runtime_backend');
      }
      if (input.runtime_metadata !== undefined) {
        changes.runtime_metadata = input.runtime_metadata;
        updates.push('runtime_metadata');
      }
      return { changes, data: { updates } };
    });
  }

  /** PUT context: replaces it whole. */
  replaceContext(id: string, context: JsonObject): Promise<SessionRecord> {
    return this.write(id, () => ({ changes: { context }, data: { updates: ['context'] } }));
  }

  /** Columns and history entry for a status change; throws SESSION_ILLEGAL_STATUS. */
  statusChange(
    cur: SessionRecord,
    to: SessionStatus,
    reason?: string,
  ): Pick<SessionChanges, 'status' | 'status_history'> {
    if (!STATUS_TRANSITIONS[cur.status].includes(to))
      throw aipError('SESSION_ILLEGAL_STATUS', { from: cur.status, to });
    const entry: StatusEntry =
      reason === undefined ? { status: to, at: this.now() } : { status: to, at: this.now(), reason };
    return { status: to, status_history: [...cur.status_history, entry] };
  }

  /**
   * The one write path: `mutate` computes the change from the current record (as this node last wrote it), and
   * may throw to refuse it. Resolves, once committed, the record this write made (the one it predicted, which the
   * store does not read back): the cache's own object, not a copy, so callers must not change it.
   */
  write(id: string, mutate: (cur: SessionRecord) => Mutation, attempt = 0): Promise<SessionRecord> {
    return this.writes.write(id, mutate, attempt);
  }

  /** Deletes a record (the log keeps a `session.deleted` event). False if there was none. */
  async delete(id: string): Promise<boolean> {
    const cur = await this.get(id);
    if (!cur) return false;
    this.writes.deleting(id);
    const event = await this.store.delete(
      id,
      this.event(id, 'session.deleted', { agent_id: cur.agent_id, status: cur.status }),
    );
    this.writes.deleted(id);
    if (!event) return false;
    this.feed.publish(event);
    return true;
  }

  /** Events with no record change (a task's command batches); not awaited on the hot path. */
  appendEvents(events: readonly NewEvent[]): Promise<void> {
    return this.store.appendEvents(events).then((stored) => {
      for (const e of stored) this.feed.publish(e);
    });
  }

  /** An event of `sessionId`, at `at` (now by default; a write passes its own `updated_at`, one clock read). */
  event(sessionId: string, type: string, data: JsonObject, at: string = this.now()): NewEvent {
    return {
      session_id: sessionId,
      type,
      at,
      data: KEPT_WHOLE.has(type) ? data : this.bounded(data),
    };
  }

  /** `data`, or a note of its size when it is larger than the limit (the keys that say what changed are kept). */
  private bounded(data: JsonObject): JsonObject {
    // Almost every payload is far under the limit: a bound of its length says so without writing it out.
    if (jsonLengthAtMost(data, this.opts.maxEventDataBytes)) return data;
    const size = JSON.stringify(data).length;
    if (size <= this.opts.maxEventDataBytes) return data;
    const kept: JsonObject = { truncated: true, bytes: size };
    for (const k of ['agent_id', 'status', 'updates', 'session_type', 'task_status'] as const)
      if (k in data) kept[k] = data[k];
    return kept;
  }

  /** Keeps a live session's record in the cache, so its writes pipeline without reads. */
  pin(record: SessionRecord): void {
    this.writes.pin(record);
  }

  unpin(id: string): void {
    this.writes.unpin(id);
  }

  events(id: string, after: number, limit: number): Promise<SessionEvent[]> {
    return this.store.events(id, after, limit);
  }

  allEvents(after: number, limit: number): Promise<SessionEvent[]> {
    return this.store.allEvents(after, limit);
  }

  /**
   * A page of one session's log (or every session's, `id` null) for an API reader: at most `limit` events, and no
   * more event data than `eventPageMaxChars` (`SessionStore.eventPage`), so that large events (a task's results
   * are kept whole) are not built into one answer by the thousand.
   */
  eventPage(id: string | null, after: number, limit: number): Promise<EventPage> {
    return this.store.eventPage(
      id,
      after,
      limit,
      this.opts.eventPageMaxChars ?? DEFAULT_EVENT_PAGE_MAX_BYTES,
    );
  }

  /** One session's whole log, oldest first, a page (`eventPage`, at most `pageSize` events) at a time. */
  async *eventPages(id: string, pageSize: number): AsyncGenerator<SessionEvent[]> {
    for (let after = 0; ;) {
      const { events, cut } = await this.eventPage(id, after, pageSize);
      if (events.length > 0) yield events;
      if (events.length < pageSize && !cut) return;
      after = events[events.length - 1]!.id;
    }
  }
}

/** The HTTP status of a session error from the catalogue. */
export function sessionErrorStatus(err: AipError): number {
  switch (err.kind) {
    case 'HTTP_SESSION_NOT_FOUND':
      return 404;
    case 'SESSION_EXISTS':
    case 'SESSION_ILLEGAL_STATUS':
    case 'SESSION_CONFLICT':
      return 409;
    default:
      return 400;
  }
}
