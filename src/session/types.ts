/**
 * The contract between the server (which owns sockets) and the session/agent logic (which owns tasks).
 * Session and agent code sees only these types: never uWebSockets.js, never msgpackr.
 */
import type { Result } from '../../protocol/index.js';
import type { CommandBatch } from '../agents/contract.js';

export type {
  Agent,
  AgentCheckpoint,
  AgentContext,
  AgentHooks,
  AgentOutcome,
  AgentRun,
  CommandBatch,
  ModelCall,
} from '../agents/contract.js';

/**
 * Runs a batch on the session's executor and resolves with one Result per action, in order.
 * It never rejects for device-side trouble: timeouts, send failures and disconnects resolve with
 * synthetic `failure` Results (ufo-aip.md §7.1). It rejects only when `signal` aborts.
 */
export interface CommandExecutor {
  execute(batch: CommandBatch, signal: AbortSignal): Promise<Result[]>;
}

export const SESSION_MODES = [
  'normal',
  'normal_operator',
  'service',
  'follower',
  'batch_normal',
  'operator',
] as const;
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
