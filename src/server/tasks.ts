/**
 * Task and session bookkeeping on the server (ufo-aip.md §6.3, §6.4, §8.4, §9.2, §11 S5/S8, §13 Q2–Q8).
 *
 * - A session is owned by its requester and executed by one device; both are indexed so a disconnect of
 *   either ends the session at once (Q4).
 * - A session id is never reused while live: another client gets "owned by another client", the owner gets
 *   "already running" (Q8). Sessions are removed after `task_end` (S5).
 * - `command_results` only look sessions up; they never create one (S8).
 */
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { AipError, aipError, type ClientMessage, type ServerMessageInput } from '../../protocol/index.js';
import type { ServerConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { SessionFactory } from '../session/factory.js';
import type { Session } from '../session/session.js';
import type { StatusChange, TaskOutcome } from '../session/types.js';
import { CommandDispatcher } from './command-dispatcher.js';
import type { ClientRecord, ClientRegistry } from './registry.js';
import { MAX_ID_LENGTH, sanitizeTaskName } from './task-name.js';

export interface LiveSession {
  readonly id: string;
  readonly taskName: string;
  readonly ownerId: string;
  readonly executorId: string;
  /** True for a constellation's task: `task_end` then also goes to the executing device. */
  readonly forConstellation: boolean;
  readonly session: Session;
  readonly dispatcher: CommandDispatcher;
  readonly startedAt: string;
  /** Set when the session was cancelled; it is the `task_end` error. */
  cancelReason: string | null;
  /** False when nobody should be told (the requester is gone and UFO sends nothing). */
  notifyRequester: boolean;
}

export interface SessionView {
  session_id: string;
  task_name: string;
  owner: string;
  executor: string;
  platform: string;
  state: string;
  started_at: string;
  history: readonly StatusChange[];
}

export type TaskResultEntry =
  | { status: 'pending'; session_id: string }
  | { status: 'done'; session_id: string; result: unknown; task_status: 'completed' | 'failed'; error: string | null };

export class TaskService {
  readonly live = new Map<string, LiveSession>();
  /** client id → ids of the live sessions it owns or executes. */
  private readonly byClient = new Map<string, Set<string>>();
  /** task_name → the latest session's status and results (Q2): bounded. */
  readonly results: LRUCache<string, TaskResultEntry>;
  private readonly running = new Set<Promise<void>>();
  /** Called after a session's `task_end` went out (data channels close with it). */
  onSessionEnded: ((sessionId: string) => void) | null = null;

  constructor(
    private readonly config: ServerConfig,
    private readonly registry: ClientRegistry,
    private readonly factory: SessionFactory,
    private readonly log: Logger,
  ) {
    this.results = new LRUCache({ max: config.taskResultCacheSize });
  }

  /** Starts a task for `requester`. Returns the session id (after sending the ACK), or the error to send. */
  start(requester: ClientRecord, msg: ClientMessage): string | AipError {
    if (!msg.request || !msg.request.trim()) return aipError('EMPTY_REQUEST');
    const executorId = this.resolveExecutor(requester, msg.target_id);
    if (executorId instanceof AipError) return executorId;
    const executor = this.registry.get(executorId)!;

    const sessionId = msg.session_id ?? randomUUID();
    if (sessionId.length > MAX_ID_LENGTH || sessionId.length === 0)
      return aipError('VALIDATION', { detail: `session_id must be 1–${MAX_ID_LENGTH} characters` });
    const existing = this.live.get(sessionId);
    if (existing) {
      return existing.ownerId === requester.clientId ? aipError('SESSION_RUNNING', { sid: sessionId }) : aipError('SESSION_OWNED', { sid: sessionId });
    }
    const running = this.countExecuting(executorId);
    if (running >= this.config.maxSessionsPerDevice) return aipError('TOO_MANY_SESSIONS', { id: executorId, max: this.config.maxSessionsPerDevice });

    const taskName = sanitizeTaskName(msg.task_name);
    let session: Session;
    try {
      session = this.factory.create({ mode: 'service', platform: executor.platform, sessionId, taskName, request: msg.request });
    } catch (err) {
      if (err instanceof AipError) return err;
      throw err;
    }
    const log = this.log.child({ session_id: sessionId, task_name: taskName });
    const dispatcher = new CommandDispatcher({
      sessionId,
      taskName,
      executorId,
      executorConn: () => this.registry.get(executorId)?.conn,
      timeoutMs: this.config.commandTimeoutMs,
      log,
    });
    const live: LiveSession = {
      id: sessionId,
      taskName,
      ownerId: requester.clientId,
      executorId,
      forConstellation: requester.clientType === 'constellation',
      session,
      dispatcher,
      startedAt: new Date().toISOString(),
      cancelReason: null,
      notifyRequester: true,
    };
    this.live.set(sessionId, live);
    this.index(requester.clientId, sessionId);
    this.index(executorId, sessionId);
    this.results.set(taskName, { status: 'pending', session_id: sessionId });

    requester.conn.send({ type: 'heartbeat', status: 'ok', session_id: sessionId, timestamp: now(), response_id: randomUUID() });
    log.info({ owner: requester.clientId, executor: executorId, platform: executor.platform }, 'task started');
    const p = this.run(live, log).finally(() => this.running.delete(p));
    this.running.add(p);
    return sessionId;
  }

  /** Routes `command_results` from `sender`; anything not from the session's executor is dropped silently. */
  deliverResults(sender: ClientRecord, msg: ClientMessage): boolean {
    if (!msg.session_id) return false;
    const live = this.live.get(msg.session_id);
    if (!live || live.executorId !== sender.clientId) return false;
    return live.dispatcher.deliver(msg.prev_response_id, msg.action_results);
  }

  /** A registered client went away: end every session it owns or executes, at once. */
  clientGone(client: ClientRecord, reason: 'disconnected' | 'slow_consumer'): void {
    const ids = this.byClient.get(client.clientId);
    if (!ids) return;
    for (const sid of [...ids]) {
      const live = this.live.get(sid);
      if (!live) continue;
      if (live.executorId === client.clientId) {
        const text =
          reason === 'slow_consumer' ? aipError('SLOW_CONSUMER_CANCELLED', { id: client.clientId }).message : aipError('DEVICE_DISCONNECTED').message;
        live.notifyRequester = live.ownerId !== client.clientId;
        this.cancel(live, text);
      } else {
        // The requester left (§8.4): UFO tells nobody; aipd still tells the executing device its task ended.
        live.notifyRequester = false;
        this.cancel(live, aipError('REQUESTER_DISCONNECTED').message);
      }
    }
  }

  /** Shutdown: every running task ends `failed` with a clear reason; resolves once every task_end is sent. */
  async shutdown(): Promise<void> {
    for (const live of this.live.values()) this.cancel(live, aipError('SERVER_SHUTDOWN').message);
    await Promise.allSettled([...this.running]);
  }

  /** Cancels a live session on request (HTTP API): the requester gets `task_end` failed. False if not live. */
  cancelById(sessionId: string): boolean {
    const live = this.live.get(sessionId);
    if (!live) return false;
    this.cancel(live, aipError('CANCELLED_BY_API').message);
    return true;
  }

  /** A live session as the HTTP API shows it. */
  describe(live: LiveSession): SessionView {
    return {
      session_id: live.id,
      task_name: live.taskName,
      owner: live.ownerId,
      executor: live.executorId,
      platform: live.session.platform,
      state: live.session.state,
      started_at: live.startedAt,
      history: live.session.history,
    };
  }

  /** The requester and executor of a live session, or null. */
  parties(sessionId: string): { requesterId: string; executorId: string } | null {
    const live = this.live.get(sessionId);
    return live ? { requesterId: live.ownerId, executorId: live.executorId } : null;
  }

  countExecuting(clientId: string): number {
    let n = 0;
    for (const sid of this.byClient.get(clientId) ?? []) if (this.live.get(sid)?.executorId === clientId) n++;
    return n;
  }

  private cancel(live: LiveSession, reason: string): void {
    if (live.cancelReason !== null) return;
    live.cancelReason = reason;
    live.dispatcher.executorGone(reason);
    live.session.cancel(reason);
  }

  private resolveExecutor(requester: ClientRecord, targetId: string | null): string | AipError {
    if (requester.clientType === 'device') {
      if (targetId && targetId !== requester.clientId) return aipError('DEVICE_TARGETS_OTHER');
      if (!this.registry.get(requester.clientId)) return aipError('DEVICE_NOT_CONNECTED', { id: requester.clientId });
      return requester.clientId;
    }
    if (!targetId) return aipError('TARGET_REQUIRED');
    // Q6: a constellation that declared its device may only run tasks there, as with device info.
    if (requester.targetId && requester.targetId !== targetId) return aipError('TARGET_NOT_AUTHORIZED');
    const target = this.registry.get(targetId);
    if (!target) return aipError('TARGET_NOT_CONNECTED', { id: targetId });
    if (target.clientType !== 'device') return aipError('TARGET_NOT_DEVICE');
    return targetId;
  }

  private async run(live: LiveSession, log: Logger): Promise<void> {
    let outcome: TaskOutcome;
    try {
      outcome = await live.session.run(live.dispatcher);
    } catch (err) {
      log.error({ err }, 'session run threw');
      outcome = { status: 'failed', result: null, error: err instanceof Error ? err.message : String(err) };
    }
    if (live.cancelReason !== null) outcome = { ...outcome, status: 'failed', error: live.cancelReason };
    this.finish(live, outcome, log);
  }

  private finish(live: LiveSession, outcome: TaskOutcome, log: Logger): void {
    const result = outcome.result ?? (outcome.status === 'failed' ? { failure: aipError('SESSION_FAILED').message } : null);
    const frame: ServerMessageInput = {
      type: 'task_end',
      status: outcome.status,
      error: outcome.status === 'failed' ? (outcome.error ?? aipError('SESSION_FAILED').message) : null,
      session_id: live.id,
      task_name: live.taskName,
      timestamp: now(),
      response_id: randomUUID(),
      result,
    };
    if (live.notifyRequester) this.registry.get(live.ownerId)?.conn.send(frame);
    if (live.forConstellation || !live.notifyRequester) {
      const exec = this.registry.get(live.executorId);
      if (exec && live.executorId !== live.ownerId) exec.conn.send(frame);
    }
    this.results.set(live.taskName, {
      status: 'done',
      session_id: live.id,
      result,
      task_status: outcome.status,
      error: frame.error ?? null,
    });
    this.live.delete(live.id);
    live.dispatcher.dispose();
    this.unindex(live.ownerId, live.id);
    this.unindex(live.executorId, live.id);
    this.onSessionEnded?.(live.id);
    log.info({ status: outcome.status, error: frame.error }, 'task ended');
  }

  private index(clientId: string, sid: string): void {
    let set = this.byClient.get(clientId);
    if (!set) this.byClient.set(clientId, (set = new Set()));
    set.add(sid);
  }

  private unindex(clientId: string, sid: string): void {
    const set = this.byClient.get(clientId);
    if (!set) return;
    set.delete(sid);
    if (set.size === 0) this.byClient.delete(clientId);
  }
}

function now(): string {
  return new Date().toISOString();
}
