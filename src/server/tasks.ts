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
import { AipError, aipError, type ClientMessage, type ServerMessageInput } from '../../protocol/index.js';
import type { ServerConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { SessionFactory } from '../session/factory.js';
import type { Session } from '../session/session.js';
import type { StatusChange, TaskOutcome } from '../session/types.js';
import type { ClientDirectory, ClientInfo } from '../state/client-directory.js';
import type { EventSink } from '../state/events.js';
import type { SessionRecord, SessionStore } from '../state/session-store.js';
import type { TaskResultStore } from '../state/task-results.js';
import { CommandDispatcher } from './command-dispatcher.js';
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
  /** The session's store writes, chained so they land in order. */
  persisted: Promise<unknown>;
}

export interface TaskState {
  readonly directory: ClientDirectory;
  readonly sessions: SessionStore;
  readonly results: TaskResultStore;
  readonly events: EventSink;
}

export class TaskService {
  /** The sessions this process runs: their agents, dispatchers and parties. Their records are in the store. */
  readonly live = new Map<string, LiveSession>();
  /** client id → ids of the live sessions it owns or executes. */
  private readonly byClient = new Map<string, Set<string>>();
  private readonly running = new Set<Promise<void>>();
  private readonly directory: ClientDirectory;
  /** task_name → the latest session's status and results (Q2). */
  readonly results: TaskResultStore;
  readonly sessions: SessionStore;
  private readonly events: EventSink;

  constructor(
    private readonly config: ServerConfig,
    state: TaskState,
    private readonly factory: SessionFactory,
    private readonly log: Logger,
  ) {
    this.directory = state.directory;
    this.results = state.results;
    this.sessions = state.sessions;
    this.events = state.events;
  }

  /** Starts a task for `requester`. Returns the session id (after sending the ACK), or the error to send. */
  start(requester: ClientInfo, msg: ClientMessage): string | AipError {
    if (!msg.request || !msg.request.trim()) return aipError('EMPTY_REQUEST');
    const executorId = this.resolveExecutor(requester, msg.target_id);
    if (executorId instanceof AipError) return executorId;
    const executor = this.directory.get(executorId)!;

    const sessionId = msg.session_id ?? randomUUID();
    if (sessionId.length > MAX_ID_LENGTH || sessionId.length === 0)
      return aipError('VALIDATION', { detail: `session_id must be 1–${MAX_ID_LENGTH} characters` });
    const existing = this.live.get(sessionId);
    if (existing) {
      return existing.ownerId === requester.clientId
        ? aipError('SESSION_RUNNING', { sid: sessionId })
        : aipError('SESSION_OWNED', { sid: sessionId });
    }
    const running = this.countExecuting(executorId);
    if (running >= this.config.maxSessionsPerDevice)
      return aipError('TOO_MANY_SESSIONS', { id: executorId, max: this.config.maxSessionsPerDevice });

    const taskName = sanitizeTaskName(msg.task_name);
    const mode = typeof msg.metadata?.mode === 'string' ? msg.metadata.mode : DEFAULT_MODE;
    let session: Session;
    const onStatus = (change: StatusChange): void => this.statusChanged(sessionId, change);
    try {
      session = this.factory.create({
        mode,
        platform: executor.platform,
        sessionId,
        taskName,
        request: msg.request,
        onStatus,
      });
    } catch (err) {
      if (err instanceof AipError) return err;
      throw err;
    }
    const log = this.log.child({ session_id: sessionId, task_name: taskName });
    const dispatcher = new CommandDispatcher({
      sessionId,
      taskName,
      executorId,
      executor: () => this.directory.link(executorId),
      timeoutMs: this.config.commandTimeoutMs,
      log,
      events: this.events,
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
      persisted: Promise.resolve(),
    };
    this.live.set(sessionId, live);
    this.index(requester.clientId, sessionId);
    this.index(executorId, sessionId);
    const record: SessionRecord = {
      id: sessionId,
      taskName,
      ownerId: requester.clientId,
      executorId,
      platform: session.platform,
      mode: session.mode,
      state: session.state,
      createdAt: live.startedAt,
      updatedAt: live.startedAt,
      history: session.history,
    };
    void this.persist(live, () => this.sessions.create(record));
    void this.persist(live, () => this.results.set(taskName, { status: 'pending', session_id: sessionId }));
    this.events.emit('session.created', {
      sessionId,
      taskName,
      ownerId: requester.clientId,
      executorId,
      platform: session.platform,
      mode: session.mode,
    });

    this.directory
      .link(requester.clientId)
      ?.send({
        type: 'heartbeat',
        status: 'ok',
        session_id: sessionId,
        timestamp: now(),
        response_id: randomUUID(),
      });
    log.info(
      { owner: requester.clientId, executor: executorId, platform: executor.platform },
      'task started',
    );
    const p = this.run(live, log).finally(() => this.running.delete(p));
    this.running.add(p);
    return sessionId;
  }

  /** Routes `command_results` from `sender`; anything not from the session's executor is dropped silently. */
  deliverResults(sender: ClientInfo, msg: ClientMessage): boolean {
    if (!msg.session_id) return false;
    const live = this.live.get(msg.session_id);
    if (!live || live.executorId !== sender.clientId) return false;
    if (!live.dispatcher.deliver(msg.prev_response_id, msg.action_results)) return false;
    if (this.events.wants('results.received')) {
      const statuses = (msg.action_results ?? []).map((r) => r.status);
      this.events.emit('results.received', {
        sessionId: live.id,
        executorId: live.executorId,
        responseId: msg.prev_response_id!,
        statuses,
      });
    }
    return true;
  }

  /** A registered client went away: end every session it owns or executes, at once. */
  clientGone(client: ClientInfo, reason: 'disconnected' | 'slow_consumer'): void {
    const ids = this.byClient.get(client.clientId);
    if (!ids) return;
    for (const sid of [...ids]) {
      const live = this.live.get(sid);
      if (!live) continue;
      if (live.executorId === client.clientId) {
        const text =
          reason === 'slow_consumer'
            ? aipError('SLOW_CONSUMER_CANCELLED', { id: client.clientId }).message
            : aipError('DEVICE_DISCONNECTED').message;
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

  private resolveExecutor(requester: ClientInfo, targetId: string | null): string | AipError {
    if (requester.clientType === 'device') {
      if (targetId && targetId !== requester.clientId) return aipError('DEVICE_TARGETS_OTHER');
      if (!this.directory.get(requester.clientId))
        return aipError('DEVICE_NOT_CONNECTED', { id: requester.clientId });
      return requester.clientId;
    }
    if (!targetId) return aipError('TARGET_REQUIRED');
    // Q6: a constellation that declared its device may only run tasks there, as with device info.
    if (requester.targetId && requester.targetId !== targetId) return aipError('TARGET_NOT_AUTHORIZED');
    const target = this.directory.get(targetId);
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
    await this.finish(live, outcome, log);
  }

  private async finish(live: LiveSession, outcome: TaskOutcome, log: Logger): Promise<void> {
    const result =
      outcome.result ??
      (outcome.status === 'failed' ? { failure: aipError('SESSION_FAILED').message } : null);
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
    const error = frame.error ?? null;
    // The result is stored, and the ended session leaves the live store (S5), before task_end goes out:
    // whoever is told can read the result, and finds the session gone.
    await this.persist(live, async () => {
      await this.results.set(live.taskName, {
        status: 'done',
        session_id: live.id,
        result,
        task_status: outcome.status,
        error,
      });
      await this.sessions.delete(live.id);
    });
    if (live.notifyRequester) this.directory.link(live.ownerId)?.send(frame);
    if (live.forConstellation || !live.notifyRequester) {
      if (live.executorId !== live.ownerId) this.directory.link(live.executorId)?.send(frame);
    }
    this.live.delete(live.id);
    live.dispatcher.dispose();
    this.unindex(live.ownerId, live.id);
    this.unindex(live.executorId, live.id);
    this.events.emit('session.ended', {
      sessionId: live.id,
      taskName: live.taskName,
      status: outcome.status,
      error,
    });
    log.info({ status: outcome.status, error: frame.error }, 'task ended');
  }

  private statusChanged(sessionId: string, change: StatusChange): void {
    const live = this.live.get(sessionId);
    if (live) void this.persist(live, () => this.sessions.appendStatus(sessionId, change));
    this.events.emit('session.status', { sessionId, ...change });
  }

  /** Runs a store write after the session's earlier ones; a failure is logged, never thrown at the hot path. */
  private persist(live: LiveSession, write: () => Promise<unknown>): Promise<unknown> {
    live.persisted = live.persisted
      .then(write)
      .catch((err: unknown) => this.log.error({ err, session_id: live.id }, 'store write failed'));
    return live.persisted;
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

/** The session mode of a task that does not name one in `metadata.mode`. */
const DEFAULT_MODE = 'service';

function now(): string {
  return new Date().toISOString();
}
