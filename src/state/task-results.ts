/**
 * Task results: what `GET /api/task_result/{name}` reads (ufo-aip.md §9.6, Q2, Q3). Keyed by task name; a
 * dispatch id handed out by `/api/dispatch` can be recorded as an alias of the task name it dispatched.
 * Implementations bound what they keep (the in-memory one by bytes), so old results are evicted, never piled up.
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
  set(taskName: string, entry: TaskResultEntry): Promise<void>;
  get(taskName: string): Promise<TaskResultEntry | undefined>;
  /** Records that `alias` (a dispatch id) names the task `taskName`. */
  alias(alias: string, taskName: string): Promise<void>;
  /** The task name an alias stands for, or undefined. */
  resolveAlias(alias: string): Promise<string | undefined>;
}
