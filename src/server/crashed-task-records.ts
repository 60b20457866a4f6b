/**
 * Crash recovery's reads and writes of session records (recovery.ts decides when): marking the sessions a node
 * left unfinished `crashed`, listing the crashed tasks this node ran, reading a task's recorded batches, and the
 * writes that resume a crashed task (`crashed` → `active`) or end it `failed`. Each write checks the record is
 * still crashed, so in a cluster one node wins each (one resume, or one `task_end` failed).
 */
import { AipError, aipError } from '../../protocol/index.js';
import type { SessionService } from '../records/session-service.js';
import type { SessionRecord } from '../state/session-model.js';
import type { SessionEvent } from '../state/session-store.js';
import type { TaskRecords } from './task-records.js';

/** Records read per page while scanning. */
export const PAGE = 500;
/** Events read per page when collecting a task's recorded batches. */
const EVENT_PAGE = 1000;

/** Marks the sessions `nodeId` was running and left `active` or `paused` crashed, with `reason`; returns how many. */
export async function markSessionsCrashed(
  sessions: SessionService,
  nodeId: string,
  reason: string,
): Promise<number> {
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
  return n;
}

/**
 * The crashed AIP tasks this node was running (marked by `markSessionsCrashed`): ids and executors only, since a
 * record carries its request, which may be large.
 */
export async function crashedTasks(records: TaskRecords): Promise<{ id: string; executor: string }[]> {
  const out: { id: string; executor: string }[] = [];
  let cursor: string | null = null;
  do {
    const page = await records.sessions.list(
      { managed_by: records.nodeId, status: ['crashed'], session_type: 'task' },
      { limit: PAGE, cursor },
    );
    for (const rec of page.items) if (rec.task) out.push({ id: rec.id, executor: rec.task.executor });
    cursor = page.next;
  } while (cursor);
  return out;
}

/** Every event of session `id`, oldest first (its recorded batches are among them). */
export async function recordedEvents(sessions: SessionService, id: string): Promise<SessionEvent[]> {
  const out: SessionEvent[] = [];
  let after = 0;
  for (;;) {
    const page = await sessions.events(id, after, EVENT_PAGE);
    out.push(...page);
    if (page.length < EVENT_PAGE) return out;
    after = page[page.length - 1]!.id;
  }
}

/**
 * Takes crashed task `id` over to resume it on this node: `active` again, managed by this node. Throws
 * CLUSTER_SESSION_MOVED when it is no longer crashed (another node resumed or ended it).
 */
export function writeResumed(
  records: TaskRecords,
  id: string,
  executor: string,
  replayedSteps: number,
): Promise<SessionRecord> {
  const sessions = records.sessions;
  const nodeId = records.nodeId;
  return sessions.write(id, (cur) => {
    // One node resumes it: whoever finds it still crashed.
    if (cur.status !== 'crashed') throw aipError('CLUSTER_SESSION_MOVED', { id, node: nodeId });
    return {
      changes: {
        ...sessions.statusChange(cur, 'active', `resumed: device '${executor}' registered again`),
        managed_by: nodeId,
      },
      type: 'task.resumed',
      data: { updates: ['status', 'managed_by'], replayed_steps: replayedSteps, node: nodeId },
    };
  });
}

/**
 * Ends a crashed task's record `failed` with `reason` and `result`, its task machine too. With `onlyIfCrashed`,
 * throws CLUSTER_SESSION_MOVED when the record is no longer crashed.
 */
export function writeFailed(
  records: TaskRecords,
  rec: SessionRecord,
  reason: string,
  result: { failure: string },
  onlyIfCrashed: boolean,
): Promise<SessionRecord> {
  const sessions = records.sessions;
  return sessions.write(rec.id, (cur) => {
    // In a cluster several nodes sweep: the one that finds it still crashed ends it and tells the requester.
    if (onlyIfCrashed && cur.status !== 'crashed')
      throw aipError('CLUSTER_SESSION_MOVED', { id: rec.id, node: records.nodeId });
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
}
