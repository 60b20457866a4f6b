/**
 * An AIP task as a durable session record: how this node creates it, records its state, its command batches and
 * its checkpoints, and ends it. Every write goes through the SessionService; the hot-path ones are not awaited
 * (a failed write is logged), and the end is awaited so `task_end` goes out only once the result is stored.
 */
import { AipError, aipError, type Result } from '../../protocol/index.js';
import type { AgentCheckpoint, ModelCall } from '../session/types.js';
import type { Logger } from '../logger.js';
import type { SessionService } from '../records/session-service.js';
import type {
  JsonObject,
  SessionRecord,
  SessionStatus,
  TaskFields,
  TaskStateEntry,
} from '../state/session-model.js';
import type { TaskCheckpoint } from './checkpoint-executor.js';

export interface NewTask {
  readonly id: string;
  readonly taskName: string;
  readonly requester: string;
  readonly executor: string;
  readonly platform: string;
  readonly mode: string;
  readonly request: string;
  readonly history: readonly TaskStateEntry[];
}

export interface TaskEnd {
  readonly status: 'completed' | 'failed' | 'cancelled';
  readonly result: unknown;
  readonly error: string | null;
  readonly history: readonly TaskStateEntry[];
  readonly requesterNotified: boolean;
}

export class TaskRecords {
  constructor(
    readonly sessions: SessionService,
    readonly nodeId: string,
    private readonly log: Logger,
  ) {}

  record(t: NewTask): SessionRecord {
    const at = this.sessions.now();
    const task: TaskFields = {
      task_name: t.taskName,
      requester: t.requester,
      executor: t.executor,
      platform: t.platform,
      mode: t.mode,
      request: t.request,
      state: t.history[t.history.length - 1]?.state ?? 'created',
      state_history: t.history,
      result: null,
      error: null,
      requester_notified: false,
    };
    return {
      id: t.id,
      agent_id: t.executor,
      session_type: 'task',
      status: 'active',
      context: {},
      checkpoint: null,
      runtime_backend: 'local',
      runtime_metadata: { node: this.nodeId, platform: t.platform },
      created_at: at,
      updated_at: at,
      status_history: [{ status: 'active', at }],
      task,
      managed_by: this.nodeId,
      version: 0,
    };
  }

  /**
   * Creates the record, replacing an ended task of the same requester with the same id (a session id is reused
   * only once its session has ended, Q8, and only by its owner). Resolves the refusal instead when the id is held:
   * `in-use` by a record that has not ended (a REST record, or a crashed task), `owned` by another client's ended
   * task or by a REST record (their results and history are not another client's to erase).
   */
  async begin(record: SessionRecord): Promise<true | 'in-use' | 'owned'> {
    const data = {
      agent_id: record.agent_id,
      session_type: record.session_type,
      runtime_backend: record.runtime_backend,
      task_name: record.task!.task_name,
    };
    try {
      await this.sessions.create(record, data);
    } catch {
      const old = await this.sessions.get(record.id);
      if (old && ['active', 'paused', 'crashed'].includes(old.status)) return 'in-use';
      if (old && (old.session_type !== 'task' || old.task?.requester !== record.task!.requester))
        return 'owned';
      await this.sessions.delete(record.id);
      await this.sessions.create(record, data);
    }
    this.sessions.pin(record);
    return true;
  }

  /** The task machine moved (created → running): event `task.started`. */
  state(id: string, history: readonly TaskStateEntry[]): void {
    const state = history[history.length - 1]!.state;
    this.background(
      id,
      this.sessions.write(id, (cur) => ({
        changes: { ...this.owned(cur), task: { ...cur.task!, state, state_history: history } },
        type: state === 'running' ? 'task.started' : 'task.state',
        data: { state },
      })),
    );
  }

  /** A command batch went out: its call ids and tool names (not the parameters). */
  commands(id: string, responseId: string, callIds: string[], tools: string[]): void {
    this.background(
      id,
      this.sessions.appendEvents([
        this.sessions.event(id, 'task.commands', { response_id: responseId, call_ids: callIds, tools }),
      ]),
    );
  }

  /**
   * Batch `index`'s results arrived: the checkpoint moves on, and its event keeps the results (recovery data).
   * Resolves once committed (a failed write is logged, not thrown: the task goes on without that checkpoint).
   */
  step(id: string, index: number, results: readonly Result[]): Promise<void> {
    const statuses = results.map((r) => r.status);
    return this.logged(
      id,
      this.sessions.write(id, (cur) => ({
        // The agent's own part of the checkpoint (agentCheckpoint) is kept.
        changes: {
          ...this.owned(cur),
          // Object.assign rather than a spread with a property added (see SessionWrites.writeNow).
          checkpoint: Object.assign({}, cur.checkpoint, { aip_steps: index + 1 }) satisfies TaskCheckpoint,
        },
        type: 'task.results',
        data: { updates: ['checkpoint'], step: index, statuses, results },
      })),
    );
  }

  /**
   * The agent saved its state (`checkpoint.agent`; the batch count in `aip_steps` is kept). Resolves once committed:
   * the agent sends nothing its checkpoint does not know of.
   */
  async agentCheckpoint(id: string, c: AgentCheckpoint): Promise<void> {
    await this.sessions.write(id, (cur) => ({
      changes: {
        ...this.owned(cur),
        checkpoint: {
          aip_steps: 0,
          ...cur.checkpoint,
          agent: c as unknown as JsonObject,
        } satisfies JsonObject,
      },
      type: 'task.checkpoint',
      data: { updates: ['checkpoint'], agent: c.agent, batches: c.batches },
    }));
  }

  /** A model call of the task's agent: event `llm.call` (GET /sessions/{id}/metrics sums its tokens). */
  modelCall(id: string, call: ModelCall): void {
    this.background(id, this.sessions.appendEvents([this.sessions.event(id, 'llm.call', { ...call })]));
  }

  /**
   * The task ended: status, result and error, committed before the caller sends `task_end`. Resolves false only
   * when the record is no longer this node's (see `owned`): then nobody must be told from here.
   */
  async end(id: string, e: TaskEnd): Promise<boolean> {
    const status: SessionStatus = e.status;
    try {
      await this.sessions.write(id, (cur) => ({
        changes: {
          ...this.owned(cur),
          ...(cur.status === status ? {} : this.sessions.statusChange(cur, status, e.error ?? undefined)),
          task: {
            ...cur.task!,
            state: e.history[e.history.length - 1]?.state ?? e.status,
            state_history: e.history,
            result: e.result,
            error: e.error,
            requester_notified: e.requesterNotified,
          },
        },
        type: 'task.ended',
        data: { updates: ['status', 'task'], task_status: e.status, error: e.error },
      }));
    } catch (err) {
      if (err instanceof AipError && err.kind === 'CLUSTER_SESSION_MOVED') {
        this.log.warn({ session_id: id, reason: err.message }, 'end of a task not recorded: not ours');
        return false;
      }
      this.log.error({ err, session_id: id }, 'could not record the end of a task');
    } finally {
      this.sessions.unpin(id);
    }
    return true;
  }

  /**
   * The fence on a live task's writes: in a cluster another node may have marked it crashed (this node's lease
   * expired) or resumed it. Throws CLUSTER_SESSION_MOVED then; returns no changes otherwise (spread into a write).
   */
  private owned(cur: SessionRecord): Record<string, never> {
    if (cur.managed_by !== this.nodeId || cur.status === 'crashed')
      throw aipError('CLUSTER_SESSION_MOVED', { id: cur.id, node: this.nodeId });
    return {};
  }

  /** A data channel of the session closed, having carried `bytes` of payload. */
  channelClosed(id: string, kind: string, bytes: number): void {
    this.background(
      id,
      this.sessions.appendEvents([this.sessions.event(id, 'channel.closed', { kind, bytes })]),
    );
  }

  /**
   * Whether the requester was sent the task's `task_end`: true once one it had missed went out; false when the one
   * the end's record counted on could not be sent (the requester left while the end was being recorded).
   */
  notified(id: string, told = true): Promise<unknown> {
    return this.sessions.write(id, (cur) => ({
      changes: { task: { ...cur.task!, requester_notified: told } },
      data: { updates: ['task'] },
    }));
  }

  private background(id: string, p: Promise<unknown>): void {
    void this.logged(id, p);
  }

  private logged(id: string, p: Promise<unknown>): Promise<void> {
    return p.then(
      () => undefined,
      (err: unknown) => this.log.error({ err, session_id: id }, 'session write failed'),
    );
  }
}
