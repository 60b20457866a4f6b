/**
 * Sends a session's command batches to its executor and matches the `command_results` (ufo-aip.md §7.1).
 *
 * - every action gets a fresh `call_id`, every batch a fresh `response_id`;
 * - results are matched only by `prev_response_id`, within this session, from this executor;
 * - a timeout, a failed send or the executor's disconnect yields synthetic failure Results at once.
 */
import { performance } from 'node:perf_hooks';
import { aipError, type Command, type Result } from '../../protocol/index.js';
import { isoNow } from '../lib/iso-now.js';
import { SlotMap } from '../lib/slot-map.js';
import { uuid } from '../lib/uuid.js';
import type { Logger } from '../logger.js';
import type { CommandBatch, CommandExecutor } from '../session/types.js';
import type { ClientLink } from '../state/client-directory.js';
import type { EventSink } from '../state/events.js';

/** A batch in flight: its promise's own resolve and reject (no closures of its own: see `settle`, `abort`). */
interface Pending {
  readonly responseId: string;
  readonly actions: Command[];
  /** performance.now() at which this batch times out. */
  readonly deadline: number;
  readonly signal: AbortSignal;
  readonly resolve: (results: Result[]) => void;
  readonly reject: (reason: Error) => void;
}

export interface DispatcherOptions {
  readonly sessionId: string;
  readonly taskName: string;
  readonly executorId: string;
  /** How to reach the executor (from the client directory), or undefined when it is gone. */
  readonly executor: () => ClientLink | undefined;
  readonly timeoutMs: number;
  readonly log: Logger;
  readonly events?: EventSink;
  /** Told of every batch sent (the task's event log). */
  readonly onSent?: (responseId: string, callIds: string[], tools: string[]) => void;
}

/**
 * Timeouts: every batch times out `timeoutMs` after it was sent. All batches of a dispatcher share that
 * duration, so their deadlines grow in send order, which is the `pending` map's order. One timer per
 * dispatcher is armed for the oldest pending deadline; when it fires it times out every due batch and re-arms
 * for the next one. A batch answered in time costs no timer operation; the timer keeps the process alive
 * only while batches are pending (as one timer per batch did).
 * Abort: one listener per AbortSignal (a session passes the same signal to every batch), not one per batch.
 */
export class CommandDispatcher implements CommandExecutor {
  /** In send order. Usually one entry (AIP has one outstanding command per session): see SlotMap. */
  private readonly pending = new SlotMap<string, Pending>();
  private gone: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Whether `timer` is armed (it is kept, unreffed, after firing with nothing pending). */
  private armed = false;
  private readonly watched = new WeakSet<AbortSignal>();

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
      call_id: uuid(),
    }));
    const responseId = uuid();
    return new Promise<Result[]>((resolve, reject) => {
      if (this.gone !== null) return resolve(synthetic(actions, this.gone));
      const link = this.opts.executor();
      if (!link || link.closed)
        return resolve(synthetic(actions, aipError('EXECUTOR_GONE', { id: this.opts.executorId }).message));

      this.watch(signal);
      const pending: Pending = {
        responseId,
        actions,
        deadline: performance.now() + this.opts.timeoutMs,
        signal,
        resolve,
        reject,
      };
      this.pending.set(responseId, pending);
      this.armTimer();
      const sent = link.send({
        type: 'command',
        status: 'continue',
        agent_name: batch.agent_name ?? null,
        process_name: batch.process_name ?? null,
        root_name: batch.root_name ?? null,
        actions,
        session_id: this.opts.sessionId,
        task_name: this.opts.taskName,
        timestamp: isoNow(),
        response_id: responseId,
      });
      if (!sent)
        return this.settle(pending, synthetic(actions, 'send to executor failed: connection closed'));
      const events = this.opts.events;
      const wants = events?.wants('command.sent') ?? false;
      if (wants || this.opts.onSent) {
        const callIds = actions.map((a) => a.call_id ?? '');
        const tools = actions.map((a) => a.tool_name);
        this.opts.onSent?.(responseId, callIds, tools);
        if (wants)
          events!.emit('command.sent', {
            sessionId: this.opts.sessionId,
            executorId: this.opts.executorId,
            responseId,
            callIds,
            tools,
          });
      }
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
    this.settle(p, complete(p.actions, results));
    return true;
  }

  /** The executor disconnected: every pending and future batch fails at once. */
  executorGone(reason: string): void {
    this.gone = reason;
    for (const p of this.pending.values()) this.settle(p, synthetic(p.actions, reason));
  }

  /** The session has ended: drop the timer now, so nothing holds this dispatcher until it would have fired. */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.armed = false;
  }

  private settle(p: Pending, results: Result[]): void {
    this.remove(p.responseId);
    p.resolve(results);
  }

  private abort(p: Pending, reason: Error): void {
    this.remove(p.responseId);
    p.reject(reason);
  }

  private remove(responseId: string): void {
    this.pending.delete(responseId);
    // Nothing pending: let the process exit (the timer, if armed, fires once more and finds nothing).
    if (this.pending.size === 0) this.timer?.unref();
  }

  /** Rejects this signal's pending batches when it aborts; one listener per signal, added on first use. */
  private watch(signal: AbortSignal): void {
    if (this.watched.has(signal)) return;
    this.watched.add(signal);
    signal.addEventListener(
      'abort',
      () => {
        for (const p of this.pending.values()) if (p.signal === signal) this.abort(p, signal.reason as Error);
      },
      { once: true },
    );
  }

  /** Makes sure the timer will fire by the oldest pending deadline (it already does if armed). */
  private armTimer(): void {
    if (this.armed) {
      this.timer!.ref();
      return;
    }
    this.armed = true;
    if (this.timer) {
      this.timer.ref();
      this.timer.refresh(); // the oldest pending batch was just added, so its deadline is timeoutMs away
    } else {
      this.timer = setTimeout(() => this.sweep(), this.opts.timeoutMs);
    }
  }

  /** Times out every due batch, then re-arms for the oldest one left. */
  private sweep(): void {
    this.armed = false;
    const now = performance.now();
    for (const [responseId, p] of this.pending.entries()) {
      const left = p.deadline - now;
      if (left > 0) {
        this.armed = true;
        this.timer = setTimeout(() => this.sweep(), Math.ceil(left));
        return;
      }
      this.opts.log.warn({ response_id: responseId, ms: this.opts.timeoutMs }, 'command timed out');
      this.settle(p, synthetic(p.actions, aipError('COMMAND_TIMEOUT', { ms: this.opts.timeoutMs }).message));
    }
  }
}

/** One Result per action, in order: missing results (or `action_results: null`) become failures. */
function complete(actions: Command[], results: Result[] | null): Result[] {
  if (results && results.length >= actions.length) return results;
  const out = results ? [...results] : [];
  for (let i = out.length; i < actions.length; i++) {
    const reason = results
      ? 'no result returned for this action'
      : 'executor returned no results (action_results was null)';
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
