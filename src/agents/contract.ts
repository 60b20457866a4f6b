/**
 * The agent contract: what a pluggable agent sees and yields. Sessions drive agents through it; agents import
 * nothing of the session layer, so the folder graph runs one way (session → agents).
 */
import type { Logger } from 'pino';
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

/** Where a batch goes on the device: the session class's routing policy (ufo-aip.md §7.3). */
export interface AgentRouting {
  readonly agent_name: string;
  readonly process_name: string | null;
  readonly root_name: string | null;
}

/**
 * An agent's own durable state, kept in the session record's `checkpoint.agent` (GET /sessions/{id}). A resumed
 * task hands it back to the agent that wrote it, and the executor replays recorded results from batch `batches` on.
 */
export interface AgentCheckpoint {
  /** The agent that wrote it (`name`); another agent ignores it. */
  readonly agent: string;
  /** Batches whose results `state` already holds: the next batch the agent yields has this index. */
  readonly batches: number;
  /** JSON: whatever the agent needs to go on. */
  readonly state: unknown;
}

/**
 * Marks the results a resumed task hands its agent for a batch that ran before the crash but whose results were
 * trimmed from the session's log (`--event-log-max`) before the resume: an empty array with this key set. The
 * batch is not sent again. The plan agent counts such a step as done (it went on after it, so it succeeded); an
 * agent whose next batch depends on earlier results should keep what it needs in its own checkpoint.
 */
export const RESULTS_TRIMMED: unique symbol = Symbol.for('aipd.resultsTrimmed');

/** Results replayed for a batch whose recorded results were trimmed (see RESULTS_TRIMMED). */
export function trimmedResults(): Result[] {
  return Object.assign([] as Result[], { [RESULTS_TRIMMED]: true });
}

/** Whether `results` stand for a batch whose recorded results were trimmed (see RESULTS_TRIMMED). */
export function isTrimmedReplay(results: readonly Result[]): boolean {
  return (results as { [RESULTS_TRIMMED]?: boolean })[RESULTS_TRIMMED] === true;
}

/** One call to a model, for the session's event log and metrics. */
export interface ModelCall {
  readonly model: string;
  readonly latency_ms: number;
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  readonly finish_reason: string | null;
  /** HTTP attempts it took (1 when no retry). */
  readonly attempts: number;
}

/** What the server offers an agent beyond the task itself: durability, usage records, routing, a logger. */
export interface AgentHooks {
  /** The checkpoint this agent saved before a crash; absent for a new task. */
  readonly resume?: AgentCheckpoint | null;
  /** Saves the agent's checkpoint; resolves once it is committed. */
  readonly checkpoint?: (c: AgentCheckpoint) => Promise<void>;
  /** Records one model call (event `llm.call`; summed in GET /sessions/{id}/metrics). */
  readonly modelCall?: (call: ModelCall) => void;
}

export interface AgentContext extends AgentHooks {
  readonly sessionId: string;
  readonly taskName: string;
  /** The task's request text, as received. */
  readonly request: string;
  readonly platform: Platform;
  /** The session mode (see SESSION_MODES in src/session/types.ts). */
  readonly mode: string;
  readonly signal: AbortSignal;
  /** The session class's routing for its `index`-th decision (0-based): Windows gives HostAgent, then AppAgent. */
  readonly routing?: (index: number) => AgentRouting;
  /** The session's logger (carries its ids). */
  readonly logger?: Logger;
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
