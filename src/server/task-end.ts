/**
 * A task's `task_end` on its way to the task's parties (ufo-aip.md §6.4, §8.4): sent once the end is recorded
 * (tasks.ts).
 */
import { randomUUID } from 'node:crypto';
import { aipError, type ServerMessageInput } from '../../protocol/index.js';
import type { Logger } from '../logger.js';
import type { TaskOutcome } from '../session/types.js';
import type { ClientDirectory, ClientLink } from '../state/client-directory.js';
import type { LiveSession } from './live-session.js';
import type { TaskRecords } from './task-records.js';

/** The `task_end` of a task that ran here, with `outcome` and its `result`. */
export function taskEndFrame(live: LiveSession, outcome: TaskOutcome, result: unknown): ServerMessageInput {
  return {
    type: 'task_end',
    status: outcome.status,
    error: outcome.status === 'failed' ? (outcome.error ?? aipError('SESSION_FAILED').message) : null,
    session_id: live.id,
    task_name: live.taskName,
    timestamp: new Date().toISOString(),
    response_id: randomUUID(),
    result,
  };
}

/**
 * Sends the `task_end` of a task whose end is recorded: to `requester` (the requester's link when the end was
 * recorded, if it is told), and to the executing device of a constellation's task or of one whose requester is
 * not told. Returns whether the requester got it.
 */
export function sendTaskEnd(
  live: LiveSession,
  frame: ServerMessageInput,
  requester: ClientLink | undefined,
  directory: ClientDirectory,
  records: TaskRecords,
  log: Logger,
): boolean {
  let delivered = requester?.send(frame) ?? false;
  // The record says the requester is told (it was connected when the end was recorded). It may have left since,
  // or come back on a new connection: then that one is told; otherwise the record is put right.
  if (requester !== undefined && !delivered) {
    const now = directory.link(live.ownerId);
    delivered = now !== undefined && now !== requester && now.send(frame);
    if (!delivered)
      void records
        .notified(live.id, false)
        .catch((err: unknown) => log.warn({ err }, 'could not record that the requester was not told'));
  }
  if (live.forConstellation || !live.notifyRequester) {
    if (live.executorId !== live.ownerId) directory.link(live.executorId)?.send(frame);
  }
  return delivered;
}
