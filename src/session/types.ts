/**
 * The contract between the server (which owns sockets) and the session/agent logic (which owns tasks).
 * Session and agent code sees only these types: never uWebSockets.js, never msgpackr.
 */
import type { CommandInput, Platform, Result } from '../../protocol/index.js';

/** One batch of commands, sent as one `command` frame. */
export interface CommandBatch {
  /** Routing key on the device (`HostAgent`, `AppAgent`, `LinuxAgent`, `MobileAgent`, ...). Filled by the session when absent. */
  agent_name?: string | null;
  process_name?: string | null;
  root_name?: string | null;
  actions: CommandInput[];
}

/**
 * Runs a batch on the session's executor and resolves with one Result per action, in order.
 * It never rejects for device-side trouble: timeouts, send failures and disconnects resolve with
 * synthetic `failure` Results (ufo-aip.md §7.1). It rejects only when `signal` aborts.
 */
export interface CommandExecutor {
  execute(batch: CommandBatch, signal: AbortSignal): Promise<Result[]>;
}

/** How an agent run ends. `result` goes to `task_end.result`. */
export interface AgentOutcome {
  status: 'completed' | 'failed';
  result: unknown;
  error?: string | null;
}

export interface AgentContext {
  readonly sessionId: string;
  readonly taskName: string;
  /** The task's request text, as received. */
  readonly request: string;
  readonly platform: Platform;
  readonly mode: SessionMode;
  readonly signal: AbortSignal;
}

/**
 * A pluggable agent: it yields batches of commands, receives their results as the value of `yield`,
 * and returns its outcome.
 */
export type AgentRun = AsyncGenerator<CommandBatch, AgentOutcome, Result[]>;
export interface Agent {
  readonly name: string;
  run(ctx: AgentContext): AgentRun;
}

export const SESSION_MODES = ['normal', 'normal_operator', 'service', 'follower', 'batch_normal', 'operator'] as const;
export type SessionMode = (typeof SESSION_MODES)[number];

/** Explicit session states; every transition goes through one guarded function in the session. */
export const SessionState = {
  CREATED: 'created',
  RUNNING: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
} as const;
export type SessionState = (typeof SessionState)[keyof typeof SessionState];

export interface StatusChange {
  readonly state: SessionState;
  readonly at: string; // ISO timestamp
  readonly reason?: string;
}

/** What the server sends in `task_end`. A cancelled session maps to `failed` on the wire. */
export interface TaskOutcome {
  status: 'completed' | 'failed';
  result: unknown;
  error: string | null;
}
