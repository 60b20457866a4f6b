/**
 * Sends a session's command batches to its executor and matches the `command_results` (ufo-aip.md §7.1).
 *
 * - every action gets a fresh `call_id`, every batch a fresh `response_id`;
 * - results are matched only by `prev_response_id`, within this session, from this executor;
 * - a timeout, a failed send or the executor's disconnect yields synthetic failure Results at once.
 */
import { randomUUID } from 'node:crypto';
import { aipError, type Command, type Result } from '../../protocol/index.js';
import type { Logger } from '../logger.js';
import type { CommandBatch, CommandExecutor } from '../session/types.js';
import type { Connection } from '../transport/connection.js';

interface Pending {
  readonly actions: Command[];
  readonly settle: (results: Result[]) => void;
}

export interface DispatcherOptions {
  readonly sessionId: string;
  readonly taskName: string;
  readonly executorId: string;
  /** The executor's live connection, or undefined when it is gone. */
  readonly executorConn: () => Connection | undefined;
  readonly timeoutMs: number;
  readonly log: Logger;
}

export class CommandDispatcher implements CommandExecutor {
  private readonly pending = new Map<string, Pending>();
  private gone: string | null = null;

  constructor(private readonly opts: DispatcherOptions) {}

  get pendingCount(): number {
    return this.pending.size;
  }

  execute(batch: CommandBatch, signal: AbortSignal): Promise<Result[]> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    const actions: Command[] = batch.actions.map((a) => ({
      tool_name: a.tool_name,
      parameters: a.parameters ?? null,
      tool_type: a.tool_type,
      call_id: randomUUID(),
    }));
    const responseId = randomUUID();
    return new Promise<Result[]>((resolve, reject) => {
      const clock: { timer?: NodeJS.Timeout } = {};
      const onAbort = (): void => {
        cleanup();
        reject(signal.reason as Error);
      };
      const cleanup = (): void => {
        this.pending.delete(responseId);
        if (clock.timer) clearTimeout(clock.timer);
        signal.removeEventListener('abort', onAbort);
      };
      const settle = (results: Result[]): void => {
        cleanup();
        resolve(results);
      };
      if (this.gone !== null) return settle(synthetic(actions, this.gone));
      const conn = this.opts.executorConn();
      if (!conn || conn.closed) return settle(synthetic(actions, aipError('EXECUTOR_GONE', { id: this.opts.executorId }).message));

      signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(responseId, { actions, settle });
      clock.timer = setTimeout(() => {
        this.opts.log.warn({ response_id: responseId, ms: this.opts.timeoutMs }, 'command timed out');
        settle(synthetic(actions, aipError('COMMAND_TIMEOUT', { ms: this.opts.timeoutMs }).message));
      }, this.opts.timeoutMs);
      const sent = conn.send({
        type: 'command',
        status: 'continue',
        agent_name: batch.agent_name ?? null,
        process_name: batch.process_name ?? null,
        root_name: batch.root_name ?? null,
        actions,
        session_id: this.opts.sessionId,
        task_name: this.opts.taskName,
        timestamp: new Date().toISOString(),
        response_id: responseId,
      });
      if (!sent) settle(synthetic(actions, 'send to executor failed: connection closed'));
    });
  }

  /**
   * Delivers `command_results`. Unknown, late and duplicate `prev_response_id`s are ignored (returns false).
   * The caller has already checked that the sender is this session's executor.
   */
  deliver(prevResponseId: string | null, results: Result[] | null): boolean {
    if (!prevResponseId) return false;
    const p = this.pending.get(prevResponseId);
    if (!p) return false;
    p.settle(complete(p.actions, results));
    return true;
  }

  /** The executor disconnected: every pending and future batch fails at once. */
  executorGone(reason: string): void {
    this.gone = reason;
    for (const p of [...this.pending.values()]) p.settle(synthetic(p.actions, reason));
  }
}

/** One Result per action, in order: missing results (or `action_results: null`) become failures. */
function complete(actions: Command[], results: Result[] | null): Result[] {
  if (results && results.length >= actions.length) return results;
  const out = results ? [...results] : [];
  for (let i = out.length; i < actions.length; i++) {
    const reason = results ? 'no result returned for this action' : 'executor returned no results (action_results was null)';
    out.push(failure(actions[i]!, reason));
  }
  return out;
}

function synthetic(actions: Command[], reason: string): Result[] {
  return actions.map((a) => failure(a, reason));
}

function failure(action: Command, reason: string): Result {
  const text = aipError('COMMAND_FAILED', { command: commandRepr(action), reason }).message;
  return { status: 'failure', error: text, result: text, namespace: null, call_id: action.call_id };
}

/** A Python-repr-like rendering of a Command, as UFO puts in its synthetic failure text. */
function commandRepr(c: Command): string {
  return `tool_name='${c.tool_name}' parameters=${JSON.stringify(c.parameters)} tool_type='${c.tool_type}' call_id='${c.call_id ?? ''}'`;
}
