/** The SQLite session store's options (see sqlite-session-store.ts) and the defaults it applies to them. */
import type { LogIndexLimits } from './sqlite-log-index.js';
import type { MigrationProgress } from './sql-schema.js';

export interface SqliteSessionStoreOptions {
  /** The database file (created if missing); ':memory:' for a private in-memory database (tests). */
  readonly path: string;
  /** Events kept per session; the oldest go first. Default 10,000. */
  readonly maxEventsPerSession?: number;
  /** Longest a write waits for others to share its transaction. Default 0: the next setImmediate. */
  readonly groupCommitMs?: number;
  /**
   * `normal` (default): durable across process death; `full`: also across power loss (see "Durability" in
   * sqlite-session-store.ts).
   */
  readonly synchronous?: 'normal' | 'full';
  /**
   * WAL checkpoints in a worker thread every this many ms (sqlite-checkpointer.ts); 0: SQLite's auto-checkpoint,
   * in the committing call on the event loop. Default 100. Not for ':memory:'.
   */
  readonly checkpointMs?: number;
  /** Added to the process's nice value for the checkpoint thread on Linux (0-19, capped at 19). Default 10. */
  readonly checkpointNice?: number;
  /** A worker checkpoint longer than this is followed by another before the store finishes it. Default 2. */
  readonly checkpointFollowUpMs?: number;
  /** Follow-up checkpoints in a row at most (0: the store finishes at once). Default 3. */
  readonly checkpointFollowUps?: number;
  /** WAL size past which the store finishes a checkpoint itself, so the WAL starts over. Default 16 MiB. */
  readonly walResetBytes?: number;
  /** WAL size past which commits checkpoint on the event loop, if the checkpoint thread lags. Default 64 MiB. */
  readonly walMaxBytes?: number;
  /** The checkpoint worker failed; SQLite's auto-checkpoint is back on. */
  readonly onCheckpointFailure?: (err: Error) => void;
  /** Told as a schema migration starts and as each version is applied (sql-schema.ts). */
  readonly onMigration?: (p: MigrationProgress) => void;
  /** When the event log is indexed (sqlite-log-index.ts). Default LOG_INDEX_LIMITS: 64 events, 4,096, 1,024. */
  readonly logIndex?: LogIndexLimits;
}

/** How long a connection waits for a lock. */
export const BUSY_TIMEOUT_MS = 5_000;
export const DEFAULT_WAL_RESET_BYTES = 16 * 1024 * 1024;
