/**
 * Task results: what `GET /api/task_result/{name}` reads (ufo-aip.md §9.6, Q2, Q3). Keyed by task name; a
 * dispatch id handed out by `/api/dispatch` can be recorded as an alias of the task name it dispatched.
 * The server's implementation reads the session store (a task's result is on its session record); aliases are
 * kept in a bounded cache.
 */

export type TaskResultEntry =
  | { status: 'pending'; session_id: string }
  | {
      status: 'done';
      session_id: string;
      result: unknown;
      task_status: 'completed' | 'failed';
      error: string | null;
    };

export interface TaskResultStore {
  /** The latest task of this name: pending while it runs, done with its result once it ended. */
  get(taskName: string): Promise<TaskResultEntry | undefined>;
  /** Records that `alias` (a dispatch id) names the task `taskName`. */
  alias(alias: string, taskName: string): Promise<void>;
  /** The task name an alias stands for, or undefined. */
  resolveAlias(alias: string): Promise<string | undefined>;
}
