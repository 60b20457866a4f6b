/**
 * Task and session bookkeeping on the server (ufo-aip.md §6.3, §6.4, §8.4, §9.2, §11 S5/S8, §13 Q2–Q8).
 *
 * - A session is owned by its requester and executed by one device; both are indexed so a disconnect of
 *   either ends the session at once (Q4).
 * - A session id is never reused while live: another client gets "owned by another client", the owner gets
 *   "already running" (Q8).
 * - `command_results` only look sessions up; they never create one (S8).
 * - Every task is a durable session record (task-records.ts): created before the ACK, checkpointed per batch,
 *   and ended (with its result) before `task_end` goes out. Crash recovery and resume are in recovery.ts.
 *
 * What a live session is and how one is built is in live-session.ts; which device runs a task and the index of
 * sessions by client in task-parties.ts; the `task_end` frame and who is sent it in task-end.ts.
 */
import { isoNow } from '../lib/iso-now.js';
import { isStorableText, unstorableField } from '../lib/storable-text.js';
import { randomUUID } from 'node:crypto';
import { AipError, aipError, type ClientMessage, type ServerMessageInput } from '../../protocol/index.js';
import type { ServerConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { SessionFactory } from '../session/factory.js';
import type { StatusChange, TaskOutcome } from '../session/types.js';
import type { ClientDirectory, ClientInfo } from '../state/client-directory.js';
import type { EventSink } from '../state/events.js';
import { CheckpointExecutor } from './checkpoint-executor.js';
import { createLiveSession, type LiveSession, type TaskSpec } from './live-session.js';
import { sendTaskEnd, taskEndFrame } from './task-end.js';
import { resolveExecutor, SessionsByClient } from './task-parties.js';
import { MAX_ID_LENGTH, sanitizeTaskName } from './task-name.js';
import type { TaskRecords } from './task-records.js';

export type { LiveSession, TaskSpec } from './live-session.js';

export class TaskService {
  /** The sessions this process runs: their agents, dispatchers and parties. Their records are in the store. */
  readonly live = new Map<string, LiveSession>();
  /** client id → ids of the live sessions it owns or executes. */
  private readonly byClient = new SessionsByClient();
  private readonly running = new Set<Promise<void>>();
  /** Told after a task ended and its `task_end` went out (recovery delivers missed ones). */
  onEnded: ((live: LiveSession, frame: ServerMessageInput, delivered: boolean) => void) | null = null;
  /**
   * In a cluster: hands a task whose device is on another node to that node (the session runs where its device
   * is). Returns null when the device is here, the error when it cannot be handed over, or true once it was.
   */
  route: ((requester: ClientInfo, msg: ClientMessage, executorId: string) => AipError | true | null) | null =
    null;
  /**
   * In a cluster: cancels a session another node runs (the store says which); with `wait`, resolves once it has
   * ended there. False when no node runs it.
   */
  cancelElsewhere: ((sessionId: string, reason: string, wait: boolean) => Promise<boolean>) | null = null;
  /** In a cluster: the parties of a session this node's client requested that runs on another node. */
  remoteParties: ((sessionId: string) => { requesterId: string; executorId: string } | null) | null = null;
  /** In a cluster: a crashed session resumed on this node (its requester's node learns where it runs now). */
  resumedHere: ((sessionId: string, requesterId: string) => void) | null = null;

  constructor(
    private readonly config: ServerConfig,
    private readonly directory: ClientDirectory,
    readonly records: TaskRecords,
    private readonly events: EventSink,
    private readonly factory: SessionFactory,
    private readonly log: Logger,
  ) {}

  /** Starts a task for `requester`. Returns the session id (the ACK follows once it is recorded), or the error. */
  start(requester: ClientInfo, msg: ClientMessage): string | AipError {
    if (!msg.request || !msg.request.trim()) return aipError('EMPTY_REQUEST');
    const executorId = resolveExecutor(this.directory, requester, msg.target_id);
    if (executorId instanceof AipError) return executorId;
    const executor = this.directory.get(executorId)!;
    const sessionId = msg.session_id ?? randomUUID();
    if (sessionId.length > MAX_ID_LENGTH || sessionId.length === 0)
      return aipError('VALIDATION', { detail: `session_id must be 1–${MAX_ID_LENGTH} characters` });
    if (!isStorableText(sessionId)) return aipError('VALIDATION', { detail: unstorableField('session_id') });
    const routed = this.route?.(requester, { ...msg, session_id: sessionId }, executorId) ?? null;
    if (routed !== null) return routed === true ? sessionId : routed;
    const existing = this.live.get(sessionId);
    if (existing) {
      return existing.ownerId === requester.clientId
        ? aipError('SESSION_RUNNING', { sid: sessionId })
        : aipError('SESSION_OWNED', { sid: sessionId });
    }
    if (this.countExecuting(executorId) >= this.config.maxSessionsPerDevice)
      return aipError('TOO_MANY_SESSIONS', { id: executorId, max: this.config.maxSessionsPerDevice });
    const spec: TaskSpec = {
      sessionId,
      taskName: sanitizeTaskName(msg.task_name),
      requesterId: requester.clientId,
      forConstellation: requester.clientType === 'constellation',
      executorId,
      platform: executor.platform,
      mode: typeof msg.metadata?.mode === 'string' ? msg.metadata.mode : DEFAULT_MODE,
      request: msg.request,
    };
    const live = this.prepare(spec);
    if (live instanceof AipError) return live;
    const record = this.records.record({
      id: sessionId,
      taskName: spec.taskName,
      requester: spec.requesterId,
      executor: executorId,
      platform: live.session.platform,
      mode: live.session.mode,
      request: spec.request,
      history: live.session.history,
    });
    live.done = this.track(
      this.records.begin(record).then(
        (ok) => {
          if (ok === 'in-use') return this.refuse(live, aipError('SESSION_ID_IN_USE', { sid: sessionId }));
          if (ok === 'owned') return this.refuse(live, aipError('SESSION_OWNED', { sid: sessionId }));
          this.directory.link(requester.clientId)?.send({
            type: 'heartbeat',
            status: 'ok',
            session_id: sessionId,
            timestamp: isoNow(),
            response_id: randomUUID(),
          });
          return this.run(live);
        },
        (err: unknown) => {
          this.log.error({ err, session_id: sessionId }, 'could not record a new task');
          return this.refuse(live, aipError('INTERNAL'));
        },
      ),
    );
    return sessionId;
  }

  /** Resumes a crashed task (recovery.ts): the record exists and is `active` again. */
  resume(spec: TaskSpec): boolean {
    if (this.live.has(spec.sessionId)) return false;
    const live = this.prepare(spec);
    if (live instanceof AipError) {
      this.log.warn({ session_id: spec.sessionId, err: live.message }, 'cannot resume task');
      return false;
    }
    // The requester is told at the end if it is connected then; recovery.ts delivers it later otherwise.
    live.done = this.track(this.run(live));
    this.resumedHere?.(spec.sessionId, spec.requesterId);
    return true;
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

  /** Cancels a live session on request: the requester gets `task_end` failed. False if not live here. */
  cancelById(sessionId: string, reason: string = aipError('CANCELLED_BY_API').message): boolean {
    const live = this.live.get(sessionId);
    if (!live) return false;
    this.cancel(live, reason);
    return true;
  }

  /**
   * Cancels a running session wherever it runs (here, or on another node of a cluster); with `wait`, resolves once
   * it has ended. False when no node runs it.
   */
  async cancelAnywhere(sessionId: string, reason: string, wait: boolean): Promise<boolean> {
    if (this.cancelById(sessionId, reason)) {
      if (wait) await this.ended(sessionId);
      return true;
    }
    return (await this.cancelElsewhere?.(sessionId, reason, wait)) ?? false;
  }

  /** Resolves once the live session has ended (at once if it is not live). */
  ended(sessionId: string): Promise<void> {
    return this.live.get(sessionId)?.done ?? Promise.resolve();
  }

  /** The requester and executor of a live session (here, or requested from here in a cluster), or null. */
  parties(sessionId: string): { requesterId: string; executorId: string } | null {
    const live = this.live.get(sessionId);
    if (live) return { requesterId: live.ownerId, executorId: live.executorId };
    return this.remoteParties?.(sessionId) ?? null;
  }

  /**
   * This node was fenced (paused past its cluster lease): other nodes may have taken its sessions over. Every live
   * session stops without telling anyone and without writing (its record refuses this node's writes anyway).
   */
  abandonAll(): number {
    const all = [...this.live.values()];
    for (const live of all) {
      live.abandoned = true;
      live.notifyRequester = false;
      this.cancel(
        live,
        aipError('CLUSTER_SESSION_MOVED', { id: live.id, node: this.records.nodeId }).message,
      );
    }
    return all.length;
  }

  countExecuting(clientId: string): number {
    let n = 0;
    for (const sid of this.byClient.get(clientId) ?? []) if (this.live.get(sid)?.executorId === clientId) n++;
    return n;
  }

  /** Builds the session and its dispatcher (live-session.ts) and indexes it as live. */
  private prepare(spec: TaskSpec): LiveSession | AipError {
    const { sessionId, taskName, executorId } = spec;
    const live = createLiveSession(spec, {
      config: this.config,
      directory: this.directory,
      records: this.records,
      events: this.events,
      factory: this.factory,
      log: this.log,
      onStatus: (change) => this.statusChanged(sessionId, change),
    });
    if (live instanceof AipError) return live;
    this.live.set(sessionId, live);
    this.byClient.index(spec.requesterId, sessionId);
    this.byClient.index(executorId, sessionId);
    this.events.emit('session.created', {
      sessionId,
      taskName,
      ownerId: spec.requesterId,
      executorId,
      platform: live.session.platform,
      mode: live.session.mode,
    });
    return live;
  }

  /** The task could not be recorded: the requester gets the error, and nothing ran. */
  private refuse(live: LiveSession, err: AipError): void {
    this.forget(live);
    this.directory.link(live.ownerId)?.send({
      type: 'error',
      status: 'error',
      error: err.message,
      timestamp: isoNow(),
      response_id: randomUUID(),
    });
  }

  private track(p: Promise<void>): Promise<void> {
    const q: Promise<void> = p
      .catch((err: unknown) => this.log.error({ err }, 'task failed unexpectedly'))
      .finally(() => this.running.delete(q));
    this.running.add(q);
    return q;
  }

  private cancel(live: LiveSession, reason: string): void {
    if (live.cancelReason !== null) return;
    live.cancelReason = reason;
    live.dispatcher.executorGone(reason);
    live.session.cancel(reason);
  }

  private async run(live: LiveSession): Promise<void> {
    const log = this.log.child({ session_id: live.id, task_name: live.taskName });
    log.info(
      { owner: live.ownerId, executor: live.executorId, platform: live.session.platform },
      'task started',
    );
    const executor = new CheckpointExecutor(
      live.dispatcher,
      live.replay,
      (i, results) => this.records.step(live.id, i, results),
      live.firstBatch,
    );
    live.replay = [];
    let outcome: TaskOutcome;
    try {
      outcome = await live.session.run(executor);
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
    const frame = taskEndFrame(live, outcome, result);
    const error = frame.error ?? null;
    const requester = live.notifyRequester ? this.directory.link(live.ownerId) : undefined;
    // The result is stored before task_end goes out: whoever is told can read it. A session this node no longer
    // owns (fenced, taken over) ends here without a word: its new owner tells the requester.
    const owned = await this.records.end(live.id, {
      status: live.session.state === 'cancelled' ? 'cancelled' : outcome.status,
      result,
      error,
      history: [...live.priorHistory, ...live.session.history],
      requesterNotified: requester !== undefined,
    });
    if (!owned || live.abandoned) {
      this.forget(live);
      log.warn({ status: outcome.status }, "task given up: its session is no longer this node's");
      return;
    }
    const delivered = sendTaskEnd(live, frame, requester, this.directory, this.records, log);
    this.forget(live);
    this.events.emit('session.ended', {
      sessionId: live.id,
      taskName: live.taskName,
      status: outcome.status,
      error,
    });
    this.onEnded?.(live, frame, delivered);
    log.info({ status: outcome.status, error: frame.error }, 'task ended');
  }

  private forget(live: LiveSession): void {
    this.live.delete(live.id);
    live.dispatcher.dispose();
    this.byClient.unindex(live.ownerId, live.id);
    this.byClient.unindex(live.executorId, live.id);
  }

  private statusChanged(sessionId: string, change: StatusChange): void {
    const live = this.live.get(sessionId);
    // The end is recorded with the result (finish); the start and other moves as they happen.
    if (live && change.state === 'running')
      this.records.state(sessionId, [...live.priorHistory, ...live.session.history]);
    this.events.emit('session.status', { sessionId, ...change });
  }
}

/** The session mode of a task that does not name one in `metadata.mode`. */
const DEFAULT_MODE = 'service';
