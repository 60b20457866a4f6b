/**
 * The SQLite store's writes (see "Group commit" in sqlite-session-store.ts): the queued op of each write, the body
 * of the transaction that applies a batch of them and gives their events ids, and the newest id given, read from
 * the file at open.
 */
import type Database from 'better-sqlite3';
import type { SqliteLogIndex } from './sqlite-log-index.js';
import { EVENT_ID_FLOOR_KEY } from './sqlite-schema.js';
import type { CreateParams, Statements, UpdateStatements } from './sqlite-statements.js';
import type { SessionEvent, UpdateResult } from './session-store.js';
import { CHANGE_FIELDS, decodeEvent, type EncodedEvent, type Settle } from './sql-schema.js';

/** The `task` bit of a change mask, and where its JSON is in the mask's values (each field before it has one). */
export const TASK_BIT = 1 << CHANGE_FIELDS.indexOf('task');
export const taskAt = (mask: number): number => {
  let n = 0;
  for (let m = mask & (TASK_BIT - 1); m !== 0; m &= m - 1) n++;
  return n;
};

/**
 * A write. `values` are an update's changed columns (no `task`); `task` is the `session_tasks` JSON, null for none,
 * and undefined when the update leaves it as it is.
 */
export type Op = Settle &
  (
    | { kind: 'create'; params: CreateParams; event: EncodedEvent }
    | {
        kind: 'update';
        id: string;
        version: number;
        mask: number;
        values: unknown[];
        task: string | null | undefined;
        event: EncodedEvent;
      }
    | { kind: 'delete'; id: string; event: EncodedEvent }
    | { kind: 'append'; events: EncodedEvent[] }
  );

/**
 * The body of a batch's transaction: each op in order, then its events in bulk (ids from `lastId` + 1 on), then the
 * indexing of the logs that this batch brought to their turn. Returns the results of the batch's ops, in order, and
 * the newest event id given.
 */
export function applyBatch(
  batch: Op[],
  lastId: number,
  st: Statements,
  updates: UpdateStatements,
  index: SqliteLogIndex,
): { results: unknown[]; lastId: number } {
  let nextId = lastId;
  const rows: unknown[] = [];
  const results = new Array<unknown>(batch.length);
  const log = (e: EncodedEvent): SessionEvent => {
    const id = ++nextId;
    rows.push(id, e.session_id, e.type, e.at, e.data);
    return decodeEvent(id, e);
  };
  for (let i = 0; i < batch.length; i++) {
    const op = batch[i]!;
    switch (op.kind) {
      case 'create':
        if (st.insert.run(op.params.row).changes === 1) {
          st.insertProgress.run(op.params.progress);
          if (op.params.task !== null) st.putTask.run(op.params.progress[0], op.params.task);
          results[i] = log(op.event);
        } else results[i] = null;
        break;
      case 'update':
        // Only the changed columns are written (sqlite-statements.ts), and nothing is read back; the `task` JSON
        // only when given.
        if (updates.run(op.mask, op.values, op.id, op.version)) {
          if (op.task === null) st.deleteTask.run(op.id);
          else if (op.task !== undefined) st.putTask.run(op.id, op.task);
          results[i] = { version: op.version + 1, event: log(op.event) } satisfies UpdateResult;
        } else results[i] = null;
        break;
      case 'delete':
        // Its `session_progress` and `session_tasks` rows go with it (ON DELETE CASCADE).
        results[i] = st.delete.run(op.id).changes === 1 ? log(op.event) : null;
        break;
      case 'append':
        results[i] = op.events.map(log);
        break;
    }
  }
  if (rows.length > 0) {
    st.insertEvents.run(rows);
    index.added(rows, nextId);
  }
  return { results, lastId: nextId };
}

/**
 * The newest event id ever given, read from the file (0 before the first): the newest in the log, or the log
 * index's mark, which close moves to the newest id (so rows deleted from a closed file by hand are not given again),
 * or the floor migration 2 kept.
 */
export function lastEventId(db: Database.Database): number {
  const id: unknown = db
    .prepare(
      'SELECT max(coalesce((SELECT max(id) FROM session_events), 0), ' +
        'coalesce((SELECT max(indexed) FROM session_log_mark), 0), ' +
        `coalesce((SELECT CAST(value AS INTEGER) FROM schema_meta WHERE key = '${EVENT_ID_FLOOR_KEY}'), 0))`,
    )
    .pluck()
    .get();
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0)
    throw new Error(`the event log's newest id is not an id: ${String(id)}`);
  return id;
}
