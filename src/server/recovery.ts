/**
 * Crash recovery: what a restarted node does about the sessions it was running when it stopped.
 *
 * - On start, every session this node was running and left `active` or `paused` is marked `crashed`, with a
 *   history entry saying the server stopped unexpectedly. Records clients keep for agents elsewhere are left alone.
 *   (A clean shutdown ends its tasks first, so it leaves none.)
 * - With `--resume auto`, a crashed AIP task resumes when its executing device registers again: `crashed` →
 *   `active`, its recorded batches are replayed, and it goes on at the first batch with no recorded results
 *   (at-least-once for the batch in flight at the crash). An agent that saved its own state in the checkpoint
 *   (`checkpoint.agent`: the `llm` agent's conversation) is handed it back and goes on from there. Its requester gets `task_end` when it ends, or when it
 *   registers again if it was away then.
 * - A crashed task whose device has not come back within `--resume-grace-ms` of the restart ends `failed`, saying
 *   so: it never resumes days later by surprise.
 * - With `--resume never`, crashed tasks end `failed` at once (at start, and in a cluster at each sweep), saying so.
 */
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { AipError, aipError, type ServerMessageInput } from '../../protocol/index.js';
import type { Logger } from '../logger.js';
import type { SessionRecord } from '../state/session-model.js';
import type { SessionEvent } from '../state/session-store.js';
import type { EventBus } from '../state/events.js';
import type { ClientDirectory } from '../state/client-directory.js';
import { replayFrom, type TaskCheckpoint } from './checkpoint-executor.js';
import type { TaskRecords } from './task-records.js';
import type { LiveSession, TaskService } from './tasks.js';

export interface RecoveryOptions {
  readonly resume: 'auto' | 'never';
  readonly resumeGraceMs: number;
  /**
   * In a cluster (`clusterSweepMs`): crashed tasks are shared by every node. A device that registers here resumes
   * its crashed tasks whichever node ran them, and every this often each node fails the crashed tasks whose grace
   * is over. The store's versioned writes make sure one node wins each (one resume, or one `task_end` failed).
   */
  readonly clusterSweepMs?: number;
  /**
   * In a cluster: checks with Redis, now, that this node still holds its lease. A node that was paused (SIGSTOP,
   * a long GC) may run a timer before its heartbeat notices the fence; it must not resume or fail anything then.
   */
  readonly stillLive?: () => Promise<boolean>;
}

/** Requesters whose missed `task_end`s are kept (the least recently used go first), and frames kept for each. */
const MAX_UNDELIVERED_REQUESTERS = 10_000;
const MAX_UNDELIVERED_PER_REQUESTER = 256;

/** Records read per page while scanning. */
const PAGE = 500;
/** Events read per page when collecting a task's recorded batches. */
const EVENT_PAGE = 1000;

export const CRASH_REASON = 'aipd stopped unexpectedly while this session was active';
/** Why a crashed task ends failed under `--resume never`. */
const NOT_RESUMED_NEVER =
  'the task was not resumed: aipd stopped while running it, and runs with --resume never';

export class TaskRecovery {
  /** Crashed task sessions that may still resume, by id → executor. */
  private readonly waiting = new Map<string, string>();
  /** Ended resumed tasks whose requester has not been told: requester → frames. */
  private readonly undelivered = new LRUCache<string, ServerMessageInput[]>({
    max: MAX_UNDELIVERED_REQUESTERS,
  });
  private readonly resumed = new Set<string>();
  private graceTimer: NodeJS.Timeout | null = null;
  /** The grace timer has fired: a task that goes back to waiting now would never be failed, so it is failed. */
  private graceOver = false;
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeping = false;
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly tasks: TaskService,
    private readonly records: TaskRecords,
    private readonly directory: ClientDirectory,
    private readonly bus: EventBus,
    private readonly opts: RecoveryOptions,
    private readonly log: Logger,
  ) {}

  /**
   * Marks the unfinished sessions of `nodeId` (this node by default: call before serving) crashed; returns how
   * many. In a cluster the reaper calls it for a node whose lease expired.
   */
  async markCrashed(nodeId: string = this.records.nodeId, reason: string = CRASH_REASON): Promise<number> {
    const sessions = this.records.sessions;
    let n = 0;
    for (;;) {
      const page = await sessions.list({ managed_by: nodeId, status: ['active', 'paused'] }, { limit: PAGE });
      if (page.items.length === 0) break;
      for (const rec of page.items) {
        try {
          await sessions.write(rec.id, (cur) => {
            if (cur.managed_by !== nodeId || (cur.status !== 'active' && cur.status !== 'paused'))
              throw aipError('CLUSTER_SESSION_MOVED', { id: cur.id, node: nodeId });
            return { changes: sessions.statusChange(cur, 'crashed', reason), data: { updates: ['status'] } };
          });
          n++;
        } catch (err) {
          // Ended or moved meanwhile; anything else is retried by the next page (it is still listed).
          if (!(err instanceof AipError)) throw err;
        }
      }
    }
    if (n > 0) this.log.warn({ sessions: n, node: nodeId, reason }, 'marked sessions crashed');
    return n;
  }

  /** Starts listening for returning devices and requesters, and the grace timer. */
  async start(): Promise<void> {
    const crashed = await this.crashedTasks();
    if (this.opts.resume === 'auto') {
      for (const { id, executor } of crashed) this.waiting.set(id, executor);
      if (this.waiting.size > 0) {
        this.log.info(
          { tasks: this.waiting.size, grace_ms: this.opts.resumeGraceMs },
          'crashed tasks wait for their devices',
        );
        this.graceTimer = setTimeout(() => void this.expire(), this.opts.resumeGraceMs);
        this.graceTimer.unref();
      }
    } else {
      // `--resume never`: they end failed now. Left crashed, the requester would wait for `task_end` and
      // `/api/task_result` answer `pending` for ever, and the session id could never be used again.
      for (const { id } of crashed) {
        const rec = await this.records.sessions.get(id);
        if (rec?.status === 'crashed') await this.fail(rec, NOT_RESUMED_NEVER, true);
      }
      if (crashed.length > 0)
        this.log.warn({ tasks: crashed.length }, 'crashed tasks ended failed (--resume never)');
    }
    // In a cluster every node sweeps the crashed tasks (of nodes that died since, too): to resume or fail them.
    const shared = this.opts.clusterSweepMs !== undefined;
    const resumes = this.opts.resume === 'auto';
    this.unsubscribe = this.bus.on('client.registered', (e) => {
      this.deliver(e.clientId);
      if (e.clientType !== 'device' || !resumes) return;
      if (shared) return void this.resumeCrashedOf(e.clientId);
      for (const [id, executor] of this.waiting) if (executor === e.clientId) void this.resume(id);
    });
    if (shared) this.scheduleSweep(this.opts.clusterSweepMs);
    this.tasks.onEnded = (live, frame, delivered) => this.ended(live, frame, delivered);
  }

  stop(): void {
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  /** Crashed tasks still waiting for their device. */
  get pending(): number {
    return this.waiting.size;
  }

  private async resume(id: string): Promise<void> {
    if (!this.waiting.delete(id)) return;
    const sessions = this.records.sessions;
    try {
      if (this.opts.stillLive && !(await this.opts.stillLive())) return;
      const rec = await sessions.get(id);
      if (!rec?.task || rec.status !== 'crashed') return;
      const checkpoint = rec.checkpoint as Partial<TaskCheckpoint> | null;
      const replay = replayFrom(await this.recordedEvents(id), checkpoint?.aip_steps ?? 0);
      const device = this.directory.get(rec.task.executor);
      if (!device) {
        // The device left again while the record was read. It waits on, unless the grace ran out meanwhile: the
        // grace timer fires once, and did not see it (it was out of the waiting list), so it ends failed here.
        if (this.graceOver) await this.fail(rec, this.notResumed(rec.task.executor), true);
        else this.waiting.set(id, rec.task.executor);
        return;
      }
      const nodeId = this.records.nodeId;
      let active: SessionRecord;
      try {
        active = await sessions.write(id, (cur) => {
          // One node resumes it: whoever finds it still crashed.
          if (cur.status !== 'crashed') throw aipError('CLUSTER_SESSION_MOVED', { id, node: nodeId });
          return {
            changes: {
              ...sessions.statusChange(
                cur,
                'active',
                `resumed: device '${rec.task!.executor}' registered again`,
              ),
              managed_by: nodeId,
            },
            type: 'task.resumed',
            data: { updates: ['status', 'managed_by'], replayed_steps: replay.length, node: nodeId },
          };
        });
      } catch (err) {
        if (err instanceof AipError && err.kind === 'CLUSTER_SESSION_MOVED') return;
        throw err;
      }
      sessions.pin(active);
      this.resumed.add(id);
      const t = rec.task;
      const ok = this.tasks.resume({
        sessionId: id,
        taskName: t.task_name,
        requesterId: t.requester,
        forConstellation: t.requester !== t.executor,
        executorId: t.executor,
        platform: device.platform,
        mode: t.mode,
        request: t.request,
        replay,
        priorHistory: t.state_history,
        agentCheckpoint: checkpoint?.agent ?? null,
      });
      if (!ok) await this.fail(active, 'the task could not be resumed');
      else this.log.info({ session_id: id, replayed_steps: replay.length }, 'crashed task resumed');
    } catch (err) {
      this.log.error({ err, session_id: id }, 'resuming a crashed task failed');
    }
  }

  private async recordedEvents(id: string): Promise<SessionEvent[]> {
    const out: SessionEvent[] = [];
    let after = 0;
    for (;;) {
      const page = await this.records.sessions.events(id, after, EVENT_PAGE);
      out.push(...page);
      if (page.length < EVENT_PAGE) return out;
      after = page[page.length - 1]!.id;
    }
  }

  /**
   * The crashed AIP tasks this node was running (marked by `markCrashed`): ids and executors only, since a record
   * carries its request, which may be large.
   */
  private async crashedTasks(): Promise<{ id: string; executor: string }[]> {
    const out: { id: string; executor: string }[] = [];
    let cursor: string | null = null;
    do {
      const page = await this.records.sessions.list(
        { managed_by: this.records.nodeId, status: ['crashed'], session_type: 'task' },
        { limit: PAGE, cursor },
      );
      for (const rec of page.items) if (rec.task) out.push({ id: rec.id, executor: rec.task.executor });
      cursor = page.next;
    } while (cursor);
    return out;
  }

  /** The grace period is over: every task still waiting ends failed, and its requester is told. */
  private async expire(): Promise<void> {
    this.graceOver = true;
    for (const [id, executor] of [...this.waiting]) {
      this.waiting.delete(id);
      const rec = await this.records.sessions.get(id);
      if (!rec || rec.status !== 'crashed') continue;
      await this.fail(rec, this.notResumed(executor));
    }
  }

  /** Why a crashed task whose device did not come back within the grace ends failed. */
  private notResumed(executor: string): string {
    const seconds = Math.round(this.opts.resumeGraceMs / 1000);
    return `the task was not resumed: its device '${executor}' did not reconnect within ${seconds} s of the server's restart`;
  }

  private async fail(rec: SessionRecord, reason: string, onlyIfCrashed = false): Promise<void> {
    const sessions = this.records.sessions;
    const result = { failure: reason };
    try {
      await sessions.write(rec.id, (cur) => {
        // In a cluster several nodes sweep: the one that finds it still crashed ends it and tells the requester.
        if (onlyIfCrashed && cur.status !== 'crashed')
          throw aipError('CLUSTER_SESSION_MOVED', { id: rec.id, node: this.records.nodeId });
        const change = sessions.statusChange(cur, 'failed', reason);
        const at = change.status_history?.at(-1)?.at ?? sessions.now();
        return {
          changes: {
            ...change,
            // The task's own machine ends too: a failed record whose task says `running` contradicts itself.
            task: {
              ...cur.task!,
              state: 'failed',
              state_history: [...cur.task!.state_history, { state: 'failed', at, reason }],
              result,
              error: reason,
            },
          },
          type: 'task.ended',
          data: { updates: ['status', 'task'], task_status: 'failed', error: reason },
        };
      });
    } catch (err) {
      if (onlyIfCrashed && err instanceof AipError) return;
      throw err;
    }
    const frame = endFrame(rec.id, rec.task!.task_name, 'failed', result, reason);
    this.queue(rec.task!.requester, frame);
    this.deliver(rec.task!.requester);
  }

  /** Cluster: a device registered here; its crashed tasks (run by any node) resume here. */
  private async resumeCrashedOf(deviceId: string): Promise<void> {
    try {
      const page = await this.records.sessions.list(
        { executor: deviceId, status: ['crashed'], session_type: 'task' },
        { limit: PAGE },
      );
      for (const rec of page.items) {
        this.waiting.set(rec.id, deviceId);
        await this.resume(rec.id);
      }
    } catch (err) {
      this.log.error({ err, device: deviceId }, 'could not look up crashed tasks of a device');
    }
  }

  private scheduleSweep(ms: number): void {
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = null;
      void this.sweep().finally(() => {
        if (this.unsubscribe) this.scheduleSweep(ms);
      });
    }, ms);
    this.sweepTimer.unref();
  }

  /**
   * Cluster: resumes every crashed task whose device is registered here, and fails every one whose grace is over
   * (whichever node crashed), once, cluster-wide.
   */
  async sweep(): Promise<number> {
    if (this.sweeping) return 0;
    this.sweeping = true;
    let n = 0;
    try {
      if (this.opts.stillLive && !(await this.opts.stillLive())) return 0;
      const deadline = Date.now() - this.opts.resumeGraceMs;
      let cursor: string | null = null;
      do {
        const page = await this.records.sessions.list(
          { status: ['crashed'], session_type: 'task' },
          { limit: PAGE, cursor },
        );
        for (const rec of page.items) {
          if (!rec.task) continue;
          if (this.opts.resume === 'never') {
            await this.fail(rec, NOT_RESUMED_NEVER, true);
            n++;
            continue;
          }
          // Its device registered here before the reaper marked the task crashed: resume it now.
          if (this.directory.isLocal(rec.task.executor)) {
            this.waiting.set(rec.id, rec.task.executor);
            await this.resume(rec.id);
            continue;
          }
          const crashedAt = Date.parse(
            rec.status_history[rec.status_history.length - 1]?.at ?? rec.updated_at,
          );
          if (crashedAt > deadline) continue;
          const node = rec.managed_by ?? 'unknown';
          const reason =
            node === this.records.nodeId
              ? `the task was not resumed: its device '${rec.task.executor}' did not reconnect within ${Math.round(this.opts.resumeGraceMs / 1000)} s of the server's restart`
              : aipError('CLUSTER_NODE_DIED', {
                  node,
                  device: rec.task.executor,
                  seconds: Math.round(this.opts.resumeGraceMs / 1000),
                }).message;
          await this.fail(rec, reason, true);
          n++;
        }
        cursor = page.next;
      } while (cursor);
    } catch (err) {
      this.log.warn({ err }, 'crashed-task sweep failed; will retry');
    } finally {
      this.sweeping = false;
    }
    return n;
  }

  private ended(live: LiveSession, frame: ServerMessageInput, delivered: boolean): void {
    const resumed = this.resumed.delete(live.id);
    if (delivered) return;
    // In a cluster a requester on another node can be out of this node's view for a moment (Redis restarted and
    // the nodes are registering their clients again): its task_end waits here until it is seen again.
    const shared = this.opts.clusterSweepMs !== undefined && live.notifyRequester;
    if (!resumed && !shared) return;
    this.queue(live.ownerId, frame);
    this.deliver(live.ownerId);
  }

  private queue(requester: string, frame: ServerMessageInput): void {
    const list = this.undelivered.get(requester) ?? [];
    if (list.length >= MAX_UNDELIVERED_PER_REQUESTER) list.shift(); // its result stays readable in the store
    list.push(frame);
    this.undelivered.set(requester, list);
  }

  /** Sends a registered requester the `task_end`s it missed (also when another node's client comes into view). */
  deliver(clientId: string): void {
    const frames = this.undelivered.get(clientId);
    const link = this.directory.link(clientId);
    if (!frames || !link) return;
    this.undelivered.delete(clientId);
    for (const f of frames) {
      if (link.send(f)) void this.records.notified(f.session_id!).catch(() => undefined);
    }
  }
}

function endFrame(
  sessionId: string,
  taskName: string,
  status: 'completed' | 'failed',
  result: unknown,
  error: string | null,
): ServerMessageInput {
  return {
    type: 'task_end',
    status,
    error,
    session_id: sessionId,
    task_name: taskName,
    timestamp: new Date().toISOString(),
    response_id: randomUUID(),
    result,
  };
}
