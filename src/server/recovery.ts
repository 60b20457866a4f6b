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
 *
 * The reads and writes of the crashed records are in crashed-task-records.ts; the `task_end`s a requester missed
 * wait in `UndeliveredTaskEnds` (task-end.ts).
 */
import { AipError, aipError, type ServerMessageInput } from '../../protocol/index.js';
import type { Logger } from '../logger.js';
import type { SessionRecord } from '../state/session-model.js';
import type { EventBus } from '../state/events.js';
import type { ClientDirectory } from '../state/client-directory.js';
import { replayFrom, type TaskCheckpoint } from './checkpoint-executor.js';
import {
  crashedTasks,
  markSessionsCrashed,
  PAGE,
  recordedEvents,
  writeFailed,
  writeResumed,
} from './crashed-task-records.js';
import { endFrame, UndeliveredTaskEnds } from './task-end.js';
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

export const CRASH_REASON = 'aipd stopped unexpectedly while this session was active';
/** Why a crashed task ends failed under `--resume never`. */
const NOT_RESUMED_NEVER =
  'the task was not resumed: aipd stopped while running it, and runs with --resume never';

export class TaskRecovery {
  /** Crashed task sessions that may still resume, by id → executor. */
  private readonly waiting = new Map<string, string>();
  /** Ended resumed tasks whose requester has not been told. */
  private readonly undelivered: UndeliveredTaskEnds;
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
  ) {
    this.undelivered = new UndeliveredTaskEnds(directory, records);
  }

  /**
   * Marks the unfinished sessions of `nodeId` (this node by default: call before serving) crashed; returns how
   * many. In a cluster the reaper calls it for a node whose lease expired.
   */
  async markCrashed(nodeId: string = this.records.nodeId, reason: string = CRASH_REASON): Promise<number> {
    const n = await markSessionsCrashed(this.records.sessions, nodeId, reason);
    if (n > 0) this.log.warn({ sessions: n, node: nodeId, reason }, 'marked sessions crashed');
    return n;
  }

  /** Starts listening for returning devices and requesters, and the grace timer. */
  async start(): Promise<void> {
    const crashed = await crashedTasks(this.records);
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
      const replay = replayFrom(await recordedEvents(sessions, id), checkpoint?.aip_steps ?? 0);
      const device = this.directory.get(rec.task.executor);
      if (!device) {
        // The device left again while the record was read. It waits on, unless the grace ran out meanwhile: the
        // grace timer fires once, and did not see it (it was out of the waiting list), so it ends failed here.
        if (this.graceOver) await this.fail(rec, this.notResumed(rec.task.executor), true);
        else this.waiting.set(id, rec.task.executor);
        return;
      }
      let active: SessionRecord;
      try {
        active = await writeResumed(this.records, id, rec.task.executor, replay.length);
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
    const result = { failure: reason };
    try {
      await writeFailed(this.records, rec, reason, result, onlyIfCrashed);
    } catch (err) {
      if (onlyIfCrashed && err instanceof AipError) return;
      throw err;
    }
    const frame = endFrame(rec.id, rec.task!.task_name, 'failed', result, reason);
    this.undelivered.queue(rec.task!.requester, frame);
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
              ? this.notResumed(rec.task.executor)
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
    this.undelivered.queue(live.ownerId, frame);
    this.deliver(live.ownerId);
  }

  /** Sends a registered requester the `task_end`s it missed (also when another node's client comes into view). */
  deliver(clientId: string): void {
    this.undelivered.deliver(clientId);
  }
}
