/**
 * The agent contract: what a pluggable agent sees and yields. Sessions drive agents through it; agents import
 * nothing of the session layer, so the folder graph runs one way (session → agents).
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
  /** The session mode (see SESSION_MODES in src/session/types.ts). */
  readonly mode: string;
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
