/**
 * `/api/task_result` over the session store: a task's status and result are read from its session record (the
 * newest task session of that name), so results survive restarts and there is one store, not two. Dispatch ids
 * from `/api/dispatch` are aliases kept in a bounded cache.
 */
import { LRUCache } from 'lru-cache';
import type { SessionRecord } from '../state/session-model.js';
import type { TaskResultEntry, TaskResultStore } from '../state/task-results.js';
import type { SessionService } from './session-service.js';

/** Dispatch aliases every node of a cluster can read (Redis), besides this node's own cache. */
export interface SharedAliases {
  set(alias: string, taskName: string): Promise<void>;
  get(alias: string): Promise<string | undefined>;
}

export class SessionTaskResults implements TaskResultStore {
  private readonly aliases: LRUCache<string, string>;
  /** In a cluster: a dispatch id made on one node resolves on every node. */
  shared: SharedAliases | null = null;

  constructor(
    private readonly sessions: SessionService,
    maxAliases: number,
  ) {
    // Bounded by entries and by bytes (ids are at most 256 characters each, so the byte bound rarely binds).
    this.aliases = new LRUCache({
      max: maxAliases,
      maxSize: maxAliases * 1024,
      sizeCalculation: (v, k) => 2 * (k.length + v.length) + 64,
    });
  }

  async get(taskName: string): Promise<TaskResultEntry | undefined> {
    const page = await this.sessions.list({ session_type: 'task', task_name: taskName }, { limit: 1 });
    const rec = page.items[0];
    return rec ? resultOf(rec) : undefined;
  }

  async alias(alias: string, taskName: string): Promise<void> {
    this.aliases.set(alias, taskName);
    await this.shared?.set(alias, taskName);
  }

  async resolveAlias(alias: string): Promise<string | undefined> {
    return this.aliases.get(alias) ?? (await this.shared?.get(alias));
  }
}

/** A task session as `/api/task_result` reports it: pending until it ended (a crashed one may still resume). */
export function resultOf(rec: SessionRecord): TaskResultEntry {
  const t = rec.task;
  if (!t || rec.status === 'active' || rec.status === 'paused' || rec.status === 'crashed')
    return { status: 'pending', session_id: rec.id };
  return {
    status: 'done',
    session_id: rec.id,
    result: t.result,
    task_status: rec.status === 'completed' ? 'completed' : 'failed',
    error: t.error,
  };
}
