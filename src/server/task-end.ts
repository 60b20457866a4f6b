/**
 * A task's `task_end` on its way to the task's parties (ufo-aip.md §6.4, §8.4): sent once the end is recorded
 * (tasks.ts), built for a crashed task that ends failed (recovery.ts), and kept for a requester that was away,
 * until it registers again.
 */
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { aipError, type ServerMessageInput } from '../../protocol/index.js';
import { isoNow } from '../lib/iso-now.js';
import type { Logger } from '../logger.js';
import type { TaskOutcome } from '../session/types.js';
import type { ClientDirectory, ClientLink } from '../state/client-directory.js';
import type { LiveSession } from './live-session.js';
import type { TaskRecords } from './task-records.js';

/** Requesters whose missed `task_end`s are kept (the least recently used go first), and frames kept for each. */
const MAX_UNDELIVERED_REQUESTERS = 10_000;
const MAX_UNDELIVERED_PER_REQUESTER = 256;

/** The `task_end` of a task that ran here, with `outcome` and its `result`. */
export function taskEndFrame(live: LiveSession, outcome: TaskOutcome, result: unknown): ServerMessageInput {
  const error = outcome.status === 'failed' ? (outcome.error ?? aipError('SESSION_FAILED').message) : null;
  return endFrame(live.id, live.taskName, outcome.status, result, error);
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

/** The `task_end` of a task that ends without running here (a crashed task recovery fails). */
export function endFrame(
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
    timestamp: isoNow(),
    response_id: randomUUID(),
    result,
  };
}

/** Ended tasks whose requester has not been told: kept per requester until it registers (or comes into view). */
export class UndeliveredTaskEnds {
  /** requester → frames. */
  private readonly undelivered = new LRUCache<string, ServerMessageInput[]>({
    max: MAX_UNDELIVERED_REQUESTERS,
  });

  constructor(
    private readonly directory: ClientDirectory,
    private readonly records: TaskRecords,
  ) {}

  queue(requester: string, frame: ServerMessageInput): void {
    const list = this.undelivered.get(requester) ?? [];
    if (list.length >= MAX_UNDELIVERED_PER_REQUESTER) list.shift(); // its result stays readable in the store
    list.push(frame);
    this.undelivered.set(requester, list);
  }

  /**
   * Sends a registered requester the `task_end`s it missed (also when another node's client comes into view). One
   * its link does not take (the link closed; for a client on another node, the bus refused it) stays kept, ahead of
   * any queued meanwhile, for its next registration or its next coming into view.
   */
  deliver(clientId: string): void {
    const frames = this.undelivered.get(clientId);
    const link = this.directory.link(clientId);
    if (!frames || !link) return;
    this.undelivered.delete(clientId);
    const kept = frames.filter((f) => {
      if (!link.send(f)) return true;
      void this.records.notified(f.session_id!).catch(() => undefined);
      return false;
    });
    if (kept.length === 0) return;
    const later = this.undelivered.get(clientId) ?? [];
    this.undelivered.delete(clientId);
    for (const f of [...kept, ...later]) this.queue(clientId, f);
  }
}
