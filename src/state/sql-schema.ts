/**
 * What the SQL session stores share: the schema version and its check, the column order of a session row, and
 * the codec between records and rows. JSON fields are stored as the text `JSON.stringify` makes (SQLite TEXT,
 * PostgreSQL `json`), so they come back exactly as given: same values, same key order, any string.
 */
import type { JsonObject, SessionRecord, SessionStatus, StatusEntry, TaskFields } from './session-model.js';
import {
  cursorOf,
  parseCursor,
  type EventPage,
  type NewEvent,
  type Page,
  type PageRequest,
  type SessionChanges,
  type SessionCount,
  type SessionEvent,
  type SessionFilter,
} from './session-store.js';

/**
 * The PostgreSQL schema version this code writes and reads; a database at a higher one is refused. The SQLite
 * store has its own (`SQLITE_SCHEMA_VERSION`): a change to one file format does not make the other's older nodes
 * refuse their database.
 */
export const SCHEMA_VERSION = 1;

/** The `schema_meta` key that holds the schema version. */
export const SCHEMA_VERSION_KEY = 'schema_version';

export function newerSchemaError(found: number, supported: number = SCHEMA_VERSION): Error {
  return new Error(
    `database schema version ${found} is newer than this aipd supports (${supported}); upgrade aipd`,
  );
}

/**
 * A schema migration's progress, told to the stores' `onMigration`: once as it starts (`version` and `ms` null),
 * then as each version is applied, with the time it took. A migration copies whole tables (version 2 of the SQLite
 * schema rewrites the event log), so on a large database it can take minutes, holding the store's open.
 */
export interface MigrationProgress {
  /** The database's version before the migration (0: a new database). */
  readonly from: number;
  readonly to: number;
  readonly version: number | null;
  readonly ms: number | null;
}

/** The stored schema version (0 when none), refusing one newer than `supported` (the store's own). */
export function checkSchemaVersion(value: unknown, supported: number = SCHEMA_VERSION): number {
  if (value === undefined || value === null) return 0;
  const found = Number(value);
  if (!Number.isInteger(found) || found < 0)
    throw new Error(`database schema version ${JSON.stringify(value)} is not a version`);
  if (found > supported) throw newerSchemaError(found, supported);
  return found;
}

/**
 * The indexes of `sessions` at schema version 1, the same SQL in SQLite and PostgreSQL (both stores' first
 * migration): list pages in created order, by each equality filter.
 */
export const SESSION_INDEXES_V1: readonly string[] = [
  'CREATE INDEX sessions_created ON sessions (created_at DESC, id DESC)',
  'CREATE INDEX sessions_agent ON sessions (agent_id, created_at DESC, id DESC)',
  'CREATE INDEX sessions_type ON sessions (session_type, created_at DESC, id DESC)',
  'CREATE INDEX sessions_status ON sessions (status, created_at DESC, id DESC)',
  'CREATE INDEX sessions_managed ON sessions (managed_by, created_at DESC, id DESC) WHERE managed_by IS NOT NULL',
  'CREATE INDEX sessions_requester ON sessions (requester, created_at DESC, id DESC) WHERE requester IS NOT NULL',
  'CREATE INDEX sessions_executor ON sessions (executor, created_at DESC, id DESC) WHERE executor IS NOT NULL',
  'CREATE INDEX sessions_task_name ON sessions (task_name, created_at DESC, id DESC) WHERE task_name IS NOT NULL',
];

/** The columns a session row is read with, in this order (`rowToRecord`). */
export const READ_COLUMNS = [
  'id',
  'agent_id',
  'session_type',
  'status',
  'context',
  'checkpoint',
  'runtime_backend',
  'runtime_metadata',
  'created_at',
  'updated_at',
  'status_history',
  'task',
  'managed_by',
  'version',
] as const;

/** The columns a session row is written with, in this order (`recordParams`): the read ones and the task's keys. */
export const WRITE_COLUMNS = [...READ_COLUMNS, 'task_name', 'requester', 'executor'] as const;

/** Columns stored as JSON text. */
export const JSON_COLUMNS: ReadonlySet<string> = new Set([
  'context',
  'checkpoint',
  'runtime_metadata',
  'status_history',
  'task',
]);

/** The fields an update may change, one bit each (`changeMask`). */
export const CHANGE_FIELDS = [
  'agent_id',
  'session_type',
  'status',
  'context',
  'checkpoint',
  'runtime_backend',
  'runtime_metadata',
  'updated_at',
  'status_history',
  'task',
  'managed_by',
] as const satisfies readonly (keyof SessionChanges)[];

/** The columns an update with this mask sets, in order (`task` sets its three key columns too). */
export function changeColumns(mask: number): string[] {
  const cols: string[] = [];
  CHANGE_FIELDS.forEach((f, i) => {
    if ((mask & (1 << i)) === 0) return;
    cols.push(f);
    if (f === 'task') cols.push('task_name', 'requester', 'executor');
  });
  return cols;
}

/** The fields present in `changes` (undefined counts as absent), as a bit mask, and their column values in order. */
export function encodeChanges(changes: SessionChanges): { mask: number; values: unknown[] } {
  let mask = 0;
  const values: unknown[] = [];
  const c = changes as Record<string, unknown>;
  for (let i = 0; i < CHANGE_FIELDS.length; i++) {
    const f = CHANGE_FIELDS[i]!;
    const v = c[f];
    if (v === undefined) continue;
    mask |= 1 << i;
    switch (f) {
      case 'context':
      case 'runtime_metadata':
      case 'status_history':
        values.push(JSON.stringify(v));
        break;
      case 'checkpoint':
        values.push(nullableJson(v));
        break;
      case 'task': {
        const t = v as TaskFields | null;
        values.push(nullableJson(t), t?.task_name ?? null, t?.requester ?? null, t?.executor ?? null);
        break;
      }
      default:
        values.push(v);
    }
  }
  return { mask, values };
}

/** A record's column values in `WRITE_COLUMNS` order. */
export function recordParams(r: SessionRecord): unknown[] {
  return [
    r.id,
    r.agent_id,
    r.session_type,
    r.status,
    JSON.stringify(r.context),
    nullableJson(r.checkpoint),
    r.runtime_backend,
    JSON.stringify(r.runtime_metadata),
    r.created_at,
    r.updated_at,
    JSON.stringify(r.status_history),
    nullableJson(r.task),
    r.managed_by,
    r.version,
    r.task?.task_name ?? null,
    r.task?.requester ?? null,
    r.task?.executor ?? null,
  ];
}

/** A record from a row read with `READ_COLUMNS` (JSON columns as text). */
export function rowToRecord(row: readonly unknown[]): SessionRecord {
  return {
    id: row[0] as string,
    agent_id: row[1] as string,
    session_type: row[2] as string,
    status: row[3] as SessionRecord['status'],
    context: JSON.parse(row[4] as string) as JsonObject,
    checkpoint: parseNullable(row[5]) as JsonObject | null,
    runtime_backend: row[6] as SessionRecord['runtime_backend'],
    runtime_metadata: JSON.parse(row[7] as string) as JsonObject,
    created_at: row[8] as string,
    updated_at: row[9] as string,
    status_history: JSON.parse(row[10] as string) as StatusEntry[],
    task: parseNullable(row[11]) as TaskFields | null,
    managed_by: row[12] as string | null,
    version: Number(row[13]),
  };
}

/** An event to be written: its columns, with `data` already JSON (so later changes by the caller don't reach it). */
export interface EncodedEvent {
  readonly session_id: string;
  readonly type: string;
  readonly at: string;
  readonly data: string;
}

/** How a queued write of either SQL store's group commit settles the caller's promise. */
export type Settle = { resolve: (v: unknown) => void; reject: (err: unknown) => void };

export function encodeEvent(e: NewEvent): EncodedEvent {
  return { session_id: e.session_id, type: e.type, at: e.at, data: JSON.stringify(e.data) };
}

/**
 * JSON texts of at most this many characters are parsed when their event is made; longer ones on first read.
 * Measured on Node 20: an object literal with a getter costs about as much as parsing 300 characters of event JSON
 * (0.8 µs), and leaves twice the garbage (0.8 KB against 0.4 KB); the hot path's events are shorter than this.
 */
export const EAGER_EVENT_JSON_CHARS = 384;

/**
 * The stored event a write resolves, from what it wrote: its own copy of `data`, parsed from the stored JSON. A
 * short JSON text is parsed at once; a longer one on first read (an own enumerable getter, so spreading, cloning
 * and JSON.stringify see it as a plain field), since most hot-path events are published to no listener and never
 * read. Each event parses its own copy, once.
 */
export function decodeEvent(id: number, e: EncodedEvent): SessionEvent {
  const json = e.data;
  if (json.length <= EAGER_EVENT_JSON_CHARS)
    return { id, session_id: e.session_id, type: e.type, at: e.at, data: JSON.parse(json) as JsonObject };
  let data: JsonObject | undefined;
  return {
    id,
    session_id: e.session_id,
    type: e.type,
    at: e.at,
    get data(): JsonObject {
      return (data ??= JSON.parse(json) as JsonObject);
    },
  };
}

/**
 * The events of rows `id, session_id, type, at, data` (data as JSON text) up to `maxChars` of data in all, the
 * first always; read lazily, so rows past the budget are never decoded (an iterating statement stops there).
 */
export function eventsWithin(rows: Iterable<readonly unknown[]>, maxChars: number): EventPage {
  const events: SessionEvent[] = [];
  let chars = 0;
  for (const row of rows) {
    chars += (row[4] as string).length;
    if (events.length > 0 && chars > maxChars) return { events, cut: true };
    events.push(rowToEvent(row));
  }
  return { events, cut: false };
}

/** An event from a row `id, session_id, type, at, data`. */
export function rowToEvent(row: readonly unknown[]): SessionEvent {
  return {
    id: Number(row[0]),
    session_id: row[1] as string,
    type: row[2] as string,
    at: row[3] as string,
    data: JSON.parse(row[4] as string) as JsonObject,
  };
}

function nullableJson(v: unknown): string | null {
  return v === null ? null : JSON.stringify(v);
}

function parseNullable(v: unknown): unknown {
  return v === null || v === undefined ? null : JSON.parse(v as string);
}

/** Equality filters and their columns. */
const EQUAL_FILTERS = [
  'agent_id',
  'session_type',
  'managed_by',
  'requester',
  'executor',
  'task_name',
] as const;
/** Exclusive bounds and their comparisons. */
const BOUND_FILTERS = [
  ['created_after', 'created_at >'],
  ['created_before', 'created_at <'],
  ['updated_after', 'updated_at >'],
  ['updated_before', 'updated_at <'],
] as const;

/**
 * The query of one page of `list`, newest first, keyset-paged on (created_at, id): `placeholder(n)` spells the
 * n-th parameter (1-based), `columns` the select list (`READ_COLUMNS` in order; a store that keeps a column
 * elsewhere reads it with a subquery), and `from` the rows (a join whose column names are unambiguous, such as
 * SQLite's `USING (id)`). `shape` names the statement text, for caching prepared statements.
 */
export function listQuery(
  filter: SessionFilter,
  page: PageRequest,
  placeholder: (n: number) => string,
  columns: string = READ_COLUMNS.join(', '),
  from = 'sessions',
): { sql: string; params: unknown[]; shape: string } {
  const where: string[] = [];
  const params: unknown[] = [];
  let shape = '';
  const p = (v: unknown): string => {
    params.push(v);
    return placeholder(params.length);
  };
  for (const f of EQUAL_FILTERS) {
    const v = filter[f];
    if (v === undefined) continue;
    where.push(`${f} = ${p(v)}`);
    shape += `${f};`;
  }
  for (const [f, cmp] of BOUND_FILTERS) {
    const v = filter[f];
    if (v === undefined) continue;
    where.push(`${cmp} ${p(v)}`);
    shape += `${f};`;
  }
  if (filter.status !== undefined) {
    where.push(
      filter.status.length === 0 ? '1 = 0' : `status IN (${filter.status.map((s) => p(s)).join(', ')})`,
    );
    shape += `status${filter.status.length};`;
  }
  const cursor = page.cursor ? parseCursor(page.cursor) : null;
  if (cursor) {
    where.push(`(created_at, id) < (${p(cursor[0])}, ${p(cursor[1])})`);
    shape += 'cursor;';
  }
  const sql =
    `SELECT ${columns} FROM ${from}` +
    (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
    ` ORDER BY created_at DESC, id DESC LIMIT ${p(page.limit + 1)}`;
  return { sql, params, shape };
}

/** `SessionStore.count` in SQL: rows of [session_type, status, count], for the given statuses. */
export function countQuery(
  statuses: readonly SessionStatus[],
  placeholder: (n: number) => string,
): { sql: string; params: SessionStatus[] } {
  const where =
    statuses.length === 0 ? '1 = 0' : `status IN (${statuses.map((_, i) => placeholder(i + 1)).join(', ')})`;
  return {
    sql: `SELECT session_type, status, count(*) FROM sessions WHERE ${where} GROUP BY session_type, status`,
    params: [...statuses],
  };
}

/** `SessionStore.count`'s result from the rows of `countQuery` (PostgreSQL's count is a bigint: text). */
export function countsOf(rows: readonly (readonly unknown[])[]): SessionCount[] {
  return rows.map((r) => ({
    session_type: r[0] as string,
    status: r[1] as SessionStatus,
    count: Number(r[2]),
  }));
}

/** A page from the rows of `listQuery` (one more than the limit when there is a next page). */
export function pageOf(rows: readonly (readonly unknown[])[], limit: number): Page {
  const items = rows.slice(0, limit).map(rowToRecord);
  const next = rows.length > limit && items.length > 0 ? cursorOf(items[items.length - 1]!) : null;
  return { items, next };
}
