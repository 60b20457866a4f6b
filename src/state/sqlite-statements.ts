/**
 * The SQLite store's statements over its schema (sqlite-schema.ts, version 3). A session is three rows:
 * - `sessions`: the fields that change now and then (status, history, context, ownership) and the filterable ones;
 * - `session_progress`: `checkpoint`, `updated_at` and `version`, which every task step writes. A narrow table of
 *   its own (about 90 bytes a row, some 40 rows to a page, against 6 in `sessions`), so that a commit of a few
 *   steps of different tasks dirties one or two of its pages instead of one `sessions` page per task: measured on
 *   64 tasks, 9.9 → 6.2 WAL frames a commit of 8 steps, 15.0 → 8.6 for 24. `version` guards every update here;
 *   the `sessions` row is written only when an update changes one of its own fields;
 * - `session_tasks`: the task JSON (see the store's header).
 * Reads join the three in `READ_COLUMNS` order, so a row still becomes a record through `rowToRecord`.
 */
import type Database from 'better-sqlite3';
import { MultiRowInsert } from './sqlite-multi-insert.js';
import { READ_COLUMNS, WRITE_COLUMNS, changeColumns, recordParams } from './sql-schema.js';
import type { SessionRecord } from './session-model.js';

/** The columns of `session_progress` after its `id`, in this order. */
const PROGRESS_COLUMNS: readonly string[] = ['checkpoint', 'updated_at', 'version'];
const inRow = (c: string): boolean => c !== 'task' && !PROGRESS_COLUMNS.includes(c);

/** Where the `sessions` columns' values are in `recordParams`, and the progress columns' (with the id first). */
const ROW_AT = WRITE_COLUMNS.flatMap((c, i) => (inRow(c) ? [i] : []));
const PROGRESS_AT = ['id', ...PROGRESS_COLUMNS].map((c) => WRITE_COLUMNS.indexOf(c as never));
const TASK_AT = WRITE_COLUMNS.indexOf('task');
const ROW_COLUMNS = ROW_AT.map((i) => WRITE_COLUMNS[i]!);

/** A session's rows joined, for `get` and `list` (columns unqualified: `USING (id)` makes `id` one column). */
export const SESSION_FROM = 'sessions JOIN session_progress USING (id)';
/** READ_COLUMNS, with `task` read from `session_tasks` (null when the session has no row there). */
export const SELECT_COLUMNS = READ_COLUMNS.map((c) =>
  c === 'task' ? '(SELECT task FROM session_tasks WHERE session_tasks.id = sessions.id) AS task' : c,
).join(', ');

/** A create's parameters: the `sessions` row, the `session_progress` row, and the task JSON (null for none). */
export interface CreateParams {
  readonly row: unknown[];
  readonly progress: unknown[];
  readonly task: string | null;
}

export function createParams(record: SessionRecord): CreateParams {
  const p = recordParams(record);
  return {
    row: ROW_AT.map((i) => p[i]),
    progress: PROGRESS_AT.map((i) => p[i]),
    task: p[TASK_AT] as string | null,
  };
}

export interface Statements {
  insert: Database.Statement;
  insertProgress: Database.Statement;
  delete: Database.Statement;
  putTask: Database.Statement;
  deleteTask: Database.Statement;
  get: Database.Statement;
  events: Database.Statement;
  allEvents: Database.Statement;
  insertEvents: MultiRowInsert;
}

/** Rows per multi-row event insert, largest first (a batch of n is split into these sizes). */
const EVENT_CHUNKS = [128, 64, 32, 16, 8, 4, 2, 1] as const;
const EVENT_COLUMNS = 'id, session_id, type, at, data';

export function prepareStatements(db: Database.Database): Statements {
  const places = (n: number): string => Array.from({ length: n }, () => '?').join(', ');
  return {
    insert: db.prepare(
      `INSERT INTO sessions (${ROW_COLUMNS.join(', ')}) VALUES (${places(ROW_COLUMNS.length)}) ` +
        'ON CONFLICT (id) DO NOTHING',
    ),
    insertProgress: db.prepare(
      `INSERT INTO session_progress (id, ${PROGRESS_COLUMNS.join(', ')}) VALUES (${places(PROGRESS_AT.length)})`,
    ),
    // Its `session_progress` and `session_tasks` rows go with it (ON DELETE CASCADE).
    delete: db.prepare('DELETE FROM sessions WHERE id = ?'),
    putTask: db.prepare(
      'INSERT INTO session_tasks (id, task) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET task = excluded.task',
    ),
    deleteTask: db.prepare('DELETE FROM session_tasks WHERE id = ?'),
    get: db.prepare(`SELECT ${SELECT_COLUMNS} FROM ${SESSION_FROM} WHERE id = ?`).raw(true),
    events: db
      .prepare(
        `SELECT ${EVENT_COLUMNS.split(', ')
          .map((c) => `e.${c}`)
          .join(', ')} ` +
          'FROM session_log_index i CROSS JOIN session_events e ON e.id = i.id ' +
          'WHERE i.session_id = ? AND i.id > ? ORDER BY i.id LIMIT ?',
      )
      .raw(true),
    allEvents: db
      .prepare(`SELECT ${EVENT_COLUMNS} FROM session_events WHERE id > ? ORDER BY id LIMIT ?`)
      .raw(true),
    insertEvents: new MultiRowInsert(db, `INSERT INTO session_events (${EVENT_COLUMNS})`, 5, EVENT_CHUNKS),
  };
}

/** An update's statements for one set of changed fields, and where each one's values are in the update's. */
interface UpdatePlan {
  /** Moves `version` on, guarded by the version the update names, with the changed progress columns. */
  readonly progress: Database.Statement;
  /** Where the progress statement's values are; null: all of them, in order (a task step's update). */
  readonly progressAt: readonly number[] | null;
  /** The changed `sessions` columns, when there are any. */
  readonly row: Database.Statement | null;
  readonly rowAt: readonly number[];
}

/** The prepared UPDATEs of the store, one plan per set of changed fields (a change mask), made on first use. */
export class UpdateStatements {
  private readonly plans = new Map<number, UpdatePlan>();

  constructor(private readonly db: Database.Database) {}

  /**
   * Writes an update's changed columns (`values`: encodeChanges's, with the task JSON taken out) if the session is
   * at `version`; false when it is not (or there is no such session), and then nothing is written.
   */
  run(mask: number, values: readonly unknown[], id: string, version: number): boolean {
    const plan = this.plans.get(mask) ?? this.plan(mask);
    const progress = plan.progressAt === null ? values : plan.progressAt.map((i) => values[i]);
    if (plan.progress.run(progress, id, version).changes !== 1) return false;
    if (plan.row)
      plan.row.run(
        plan.rowAt.map((i) => values[i]),
        id,
      );
    return true;
  }

  private plan(mask: number): UpdatePlan {
    const columns = changeColumns(mask).filter((c) => c !== 'task');
    const progressAt = columns.flatMap((c, i) => (PROGRESS_COLUMNS.includes(c) ? [i] : []));
    const rowAt = columns.flatMap((c, i) => (inRow(c) ? [i] : []));
    const sets = progressAt.map((i) => `${columns[i]!} = ?`);
    sets.push('version = version + 1');
    const plan: UpdatePlan = {
      progress: this.db.prepare(
        `UPDATE session_progress SET ${sets.join(', ')} WHERE id = ? AND version = ?`,
      ),
      progressAt: rowAt.length === 0 ? null : progressAt,
      row:
        rowAt.length === 0
          ? null
          : this.db.prepare(
              `UPDATE sessions SET ${rowAt.map((i) => `${columns[i]!} = ?`).join(', ')} WHERE id = ?`,
            ),
      rowAt,
    };
    this.plans.set(mask, plan);
    return plan;
  }
}
