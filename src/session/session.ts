/**
 * A session runs one task: it drives an Agent (an async generator of command batches), sends each batch
 * through a CommandExecutor, and feeds the results back, until the agent returns its outcome.
 *
 * - State: created → running → completed | failed | cancelled (created → cancelled if cancelled before run),
 *   all through `StateMachine.transition`; `history` keeps every change with an ISO timestamp.
 * - `run(executor)` never rejects. Calling it again returns the same promise (the later executor is ignored).
 * - Routing: a batch that leaves `agent_name` (null/empty) or `process_name`/`root_name` (undefined) unset gets the
 *   value from the session class's policy, `routing(batchIndex)`. A batch's own values always win.
 * - `cancel(reason)` aborts the AbortSignal given to the agent and the executor; `run()` then resolves
 *   `{status:'failed', error: reason, result}` at once, where `result` is what the agent reports when the
 *   cancellation is thrown into its pending `yield` (within `cancelGraceMs`), else null.
 */
import type { Logger } from 'pino';
import { aipError } from '../../protocol/index.js';
import type { Platform, Result } from '../../protocol/index.js';
import { planObjectOf } from '../agents/plan.js';
import { StateMachine } from './state-machine.js';
import { SessionState } from './types.js';
import type {
  Agent,
  AgentHooks,
  AgentOutcome,
  AgentRun,
  CommandBatch,
  CommandExecutor,
  SessionMode,
  StatusChange,
  TaskOutcome,
} from './types.js';

/** Where a batch goes on the device (ufo-aip.md §7.1, §7.3). */
export interface BatchRouting {
  agent_name: string;
  process_name: string | null;
  root_name: string | null;
}

export interface SessionOptions {
  sessionId: string;
  taskName: string;
  request: string;
  mode: SessionMode;
  /** The agent to run; null means none fits the request (the run ends `failed` with NOT_A_PLAN). */
  agent: Agent | null;
  /** The document the task targets (a plan's `object`); by default taken from a plan in `request`. */
  target?: string | null;
  logger?: Logger;
  clock?: () => Date;
  /** How long a cancelled agent may take to report its partial result. Default 1000 ms. */
  cancelGraceMs?: number;
  /** Told of every status change after it is made. */
  onStatus?: (change: StatusChange) => void;
  /** Passed to the agent: its checkpoint to resume from, and where it saves checkpoints and model calls. */
  hooks?: AgentHooks;
}

/** The reason given to the AbortSignal, and thrown into the agent's pending `yield`, on cancel. */
export class SessionCancelledError extends Error {
  override readonly name = 'SessionCancelledError';
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export abstract class Session {
  abstract readonly platform: Platform;
  readonly id: string;
  readonly taskName: string;
  readonly request: string;
  readonly mode: SessionMode;
  readonly agent: Agent | null;
  /** `target`, once known (undefined: not yet read from the request). */
  private targetValue: string | null | undefined;

  private readonly machine: StateMachine;
  private readonly controller = new AbortController();
  private readonly logger: Logger | undefined;
  private readonly cancelGraceMs: number;
  private readonly hooks: AgentHooks;
  private runPromise: Promise<TaskOutcome> | null = null;
  private cancelReason: string | null = null;
  private finalOutcome: TaskOutcome | null = null;
  private sent = 0;
  /** True while the agent waits at a `yield` for a batch's results (the run's loop, `drive`). */
  private suspended = false;

  constructor(options: SessionOptions) {
    this.id = options.sessionId;
    this.taskName = options.taskName;
    this.request = options.request;
    this.mode = options.mode;
    this.agent = options.agent;
    if (options.target !== undefined) this.targetValue = options.target?.toLowerCase() ?? null;
    this.machine = new StateMachine(options.clock, options.onStatus);
    this.logger = options.logger?.child({ session_id: this.id, task_name: this.taskName });
    this.cancelGraceMs = options.cancelGraceMs ?? 1000;
    this.hooks = options.hooks ?? {};
  }

  /** The routing for the `index`-th batch (0-based) this session sends: the session class's policy. */
  protected abstract routing(index: number): BatchRouting;

  /**
   * The document the task targets, lower-cased (a plan's `object`), or null. Read from the request on first use:
   * only some session classes route by it, and parsing a large inline plan once more per task is not free.
   */
  get target(): string | null {
    if (this.targetValue === undefined) this.targetValue = planObjectOf(this.request);
    return this.targetValue;
  }

  get state(): SessionState {
    return this.machine.state;
  }
  get history(): StatusChange[] {
    return [...this.machine.history];
  }
  /** The outcome once the run has ended, else null. */
  get outcome(): TaskOutcome | null {
    return this.finalOutcome;
  }
  /** Number of batches sent to the executor so far. */
  get batchesSent(): number {
    return this.sent;
  }
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Fills what `batch` leaves unset from the policy for the `index`-th batch. */
  route(batch: CommandBatch, index: number): CommandBatch & BatchRouting {
    const d = this.routing(index);
    // A literal, not `{ ...batch, agent_name, ... }`: on Node 20 adding properties to a spread clone costs ~1.7 µs.
    const out: CommandBatch & BatchRouting = {
      actions: batch.actions,
      agent_name: batch.agent_name || d.agent_name,
      process_name: batch.process_name === undefined ? d.process_name : batch.process_name,
      root_name: batch.root_name === undefined ? d.root_name : batch.root_name,
    };
    // Anything else a caller put on the batch is kept, as the spread did.
    for (const key in batch)
      if (!Object.hasOwn(out, key) && Object.hasOwn(batch, key))
        (out as unknown as Record<string, unknown>)[key] = (batch as unknown as Record<string, unknown>)[key];
    return out;
  }

  run(executor: CommandExecutor): Promise<TaskOutcome> {
    this.runPromise ??= this.execute(executor);
    return this.runPromise;
  }

  /** Cancels the session. Returns false (and does nothing) when it has already ended. */
  cancel(reason: string): boolean {
    if (this.machine.terminal) return false;
    this.cancelReason = reason;
    this.machine.transition(SessionState.CANCELLED, reason);
    this.logger?.debug({ reason }, 'session cancelled');
    this.controller.abort(new SessionCancelledError(reason));
    return true;
  }

  private execute(executor: CommandExecutor): Promise<TaskOutcome> {
    if (this.machine.state === SessionState.CANCELLED)
      return Promise.resolve(this.end({ status: 'failed', result: null, error: this.cancelReason }));
    this.machine.transition(SessionState.RUNNING);
    if (!this.agent)
      return Promise.resolve(
        this.finish({ status: 'failed', result: null, error: aipError('NOT_A_PLAN').message }),
      );
    const signal = this.controller.signal;
    let gen: AgentRun;
    try {
      gen = this.agent.run({
        sessionId: this.id,
        taskName: this.taskName,
        request: this.request,
        platform: this.platform,
        mode: this.mode,
        signal,
        ...this.hooks,
        routing: (index) => this.routing(index),
        ...(this.logger ? { logger: this.logger } : {}),
      });
    } catch (e) {
      return Promise.resolve(this.finish({ status: 'failed', result: null, error: errorText(e) }));
    }
    // The outcome comes from the loop, or at once from the abort listener when the session is cancelled: the loop
    // awaits the agent's and the executor's own promises (no wrapper per step), and when one of them settles after
    // the cancel, it sees the state and stops without touching the agent again.
    return new Promise<TaskOutcome>((resolve) => {
      let settled = false;
      const settle = (outcome: TaskOutcome | Promise<TaskOutcome>): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const onAbort = (): void => settle(this.cancelled(gen, this.suspended));
      signal.addEventListener('abort', onAbort, { once: true });
      this.drive(executor, gen, signal).then(
        (outcome) => outcome && settle(outcome),
        (e: unknown) => settle(this.finish({ status: 'failed', result: null, error: errorText(e) })),
      );
    });
  }

  /**
   * Runs the agent's batches through `executor` until the agent returns. Resolves its outcome, or null when the
   * session was cancelled meanwhile (the abort listener has settled the run then).
   */
  private async drive(
    executor: CommandExecutor,
    gen: AgentRun,
    signal: AbortSignal,
  ): Promise<TaskOutcome | null> {
    let input: Result[] = [];
    try {
      for (;;) {
        this.suspended = false;
        const step = await gen.next(input);
        if (this.isCancelled()) return null;
        if (step.done) return this.finish(step.value);
        this.suspended = true;
        const batch = this.route(step.value, this.sent++);
        input = await executor.execute(batch, signal);
        if (this.isCancelled()) return null;
      }
    } catch (e) {
      if (this.isCancelled()) return null;
      if (this.suspended)
        void gen.return({ status: 'failed', result: null, error: errorText(e) }).catch(() => undefined);
      return this.finish({ status: 'failed', result: null, error: errorText(e) });
    }
  }

  /** After cancel: ask a waiting agent for its partial result (bounded), then report `failed` with the reason. */
  private async cancelled(gen: AgentRun, suspended: boolean): Promise<TaskOutcome> {
    const reason = this.cancelReason ?? 'cancelled';
    let result: unknown = null;
    if (suspended) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), this.cancelGraceMs);
        timer.unref();
      });
      try {
        const r = await Promise.race([gen.throw(new SessionCancelledError(reason)).catch(() => null), grace]);
        if (r?.done) result = (r.value as AgentOutcome | undefined)?.result ?? null;
        else if (r) void gen.return({ status: 'failed', result: null, error: reason }).catch(() => undefined);
      } finally {
        clearTimeout(timer);
      }
    } else {
      void gen.return({ status: 'failed', result: null, error: reason }).catch(() => undefined);
    }
    return this.end({ status: 'failed', result, error: reason });
  }

  /** Ends a running session with the agent's outcome (unless it was cancelled meanwhile). */
  private finish(outcome: AgentOutcome): TaskOutcome {
    if (this.isCancelled()) {
      return this.end({ status: 'failed', result: outcome.result ?? null, error: this.cancelReason });
    }
    const result = outcome.result ?? null;
    if (outcome.status === 'completed') {
      this.machine.transition(SessionState.COMPLETED);
      return this.end({ status: 'completed', result, error: outcome.error ?? null });
    }
    const error = outcome.error || aipError('SESSION_FAILED').message;
    this.machine.transition(SessionState.FAILED, error);
    return this.end({ status: 'failed', result, error });
  }

  private isCancelled(): boolean {
    return this.machine.state === SessionState.CANCELLED;
  }

  private end(outcome: TaskOutcome): TaskOutcome {
    this.finalOutcome = outcome;
    this.logger?.debug(
      { status: outcome.status, state: this.machine.state, error: outcome.error },
      'session ended',
    );
    return outcome;
  }
}
