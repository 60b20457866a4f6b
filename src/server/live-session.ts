/**
 * A live task session: what this process keeps of a task it runs (its session, dispatcher and parties), what a
 * task needs to start (`TaskSpec`: a new one from a `task` frame, or a crashed one resumed), and how the session
 * and its command dispatcher are built from that spec. TaskService (tasks.ts) indexes and runs them.
 */
import { AipError, type Result } from '../../protocol/index.js';
import type { ServerConfig } from '../config.js';
import { isoNow } from '../lib/iso-now.js';
import type { Logger } from '../logger.js';
import type { SessionFactory } from '../session/factory.js';
import type { Session } from '../session/session.js';
import type { AgentCheckpoint, StatusChange } from '../session/types.js';
import type { ClientDirectory } from '../state/client-directory.js';
import type { TaskStateEntry } from '../state/session-model.js';
import type { EventSink } from '../state/events.js';
import { CommandDispatcher } from './command-dispatcher.js';
import type { TaskRecords } from './task-records.js';

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
  /** True once this node gave the session up (fenced): it ends without a write or a `task_end`. */
  abandoned: boolean;
  /** Results of batches done before a crash, replayed instead of sent (handed to the executor, then let go). */
  replay: readonly Result[][];
  /** Index of the agent's first batch: 0, or where a resumed agent's checkpoint goes on (`batches`). */
  readonly firstBatch: number;
  /** The task machine's history before a crash; the record's history is this plus the session's. */
  readonly priorHistory: readonly TaskStateEntry[];
  /** Settles when the task has ended and its `task_end` went out. */
  done: Promise<void>;
}

/** What a task needs to start: a new one from a `task` frame, or a crashed one resumed (recovery.ts). */
export interface TaskSpec {
  readonly sessionId: string;
  readonly taskName: string;
  readonly requesterId: string;
  readonly forConstellation: boolean;
  readonly executorId: string;
  readonly platform: string;
  readonly mode: string;
  readonly request: string;
  /** Results of the batches already done (a resume), replayed instead of sent. */
  readonly replay?: readonly Result[][];
  /** The task machine's history before the crash (a resume). */
  readonly priorHistory?: readonly TaskStateEntry[];
  /** The agent's own checkpoint before the crash (a resume): it goes on from there. */
  readonly agentCheckpoint?: AgentCheckpoint | null;
}

/** What building a live session takes from the task service. */
export interface LiveSessionDeps {
  readonly config: ServerConfig;
  readonly directory: ClientDirectory;
  readonly records: TaskRecords;
  readonly events: EventSink;
  readonly factory: SessionFactory;
  readonly log: Logger;
  /** Told of every status change of the session. */
  readonly onStatus: (change: StatusChange) => void;
}

/**
 * Builds the session and its dispatcher, or returns the error the session factory refused it with. The caller
 * indexes it as live.
 */
export function createLiveSession(spec: TaskSpec, deps: LiveSessionDeps): LiveSession | AipError {
  const { sessionId, taskName, executorId } = spec;
  const { records, directory } = deps;
  let session: Session;
  try {
    session = deps.factory.create({
      mode: spec.mode,
      platform: spec.platform,
      sessionId,
      taskName,
      request: spec.request,
      onStatus: deps.onStatus,
      hooks: {
        resume: spec.agentCheckpoint ?? null,
        checkpoint: (c) => records.agentCheckpoint(sessionId, c),
        modelCall: (call) => records.modelCall(sessionId, call),
      },
    });
  } catch (err) {
    if (err instanceof AipError) return err;
    throw err;
  }
  // An agent checkpoint is only the agent's own: another agent starts afresh, at batch 0.
  const agentCheckpoint = spec.agentCheckpoint?.agent === session.agent?.name ? spec.agentCheckpoint : null;
  const log = deps.log.child({ session_id: sessionId, task_name: taskName });
  const dispatcher = new CommandDispatcher({
    sessionId,
    taskName,
    executorId,
    executor: () => directory.link(executorId),
    timeoutMs: deps.config.commandTimeoutMs,
    log,
    events: deps.events,
    onSent: (responseId, callIds, tools) => records.commands(sessionId, responseId, callIds, tools),
  });
  return {
    id: sessionId,
    taskName,
    ownerId: spec.requesterId,
    executorId,
    forConstellation: spec.forConstellation,
    session,
    dispatcher,
    startedAt: isoNow(),
    cancelReason: null,
    notifyRequester: true,
    abandoned: false,
    replay: spec.replay ?? [],
    firstBatch: agentCheckpoint?.batches ?? 0,
    priorHistory: spec.priorHistory ?? [],
    done: Promise.resolve(),
  };
}
