/**
 * Bookkeeping for replies a client is waiting for: task ACKs, `task_end` frames and device-info responses.
 *
 * - `RequestQueue` holds request/reply waiters (task ACKs, device info) in send order. The server answers
 *   one connection's frames in order and its `error` frames carry no correlation id, so an `error` frame
 *   fails the oldest waiting request.
 * - `TaskEndWaiters` matches `task_end` frames by `session_id`, and remembers recent unclaimed ones so a
 *   `task_end` that arrives before `waitTaskEnd` is called (it can follow the ACK in the same TCP read)
 *   is not lost. Its waiters outlive a dropped connection that reconnects (`detach`): a server that restarted
 *   resumes the task and hands the `task_end` over when the client registers again. Each such waiter is bounded
 *   from the drop (the client's `resumeWaitMs`), so none waits forever for a task the server ended meanwhile.
 */
import type { ServerMessage } from '../../protocol/index.js';

interface Settle<T> {
  resolve(value: T): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | null;
}

function startTimer(timeoutMs: number | undefined, onTimeout: () => void): NodeJS.Timeout | null {
  if (timeoutMs === undefined || timeoutMs <= 0 || !Number.isFinite(timeoutMs)) return null;
  return setTimeout(onTimeout, timeoutMs);
}

/** What a request waiter accepts: a predicate over server frames and the value it resolves with. */
export interface RequestMatcher<T> {
  /** Short description for error messages, e.g. "task ACK for session s1". */
  readonly what: string;
  /** Returns the resolved value if this frame answers the request, else undefined. */
  match(msg: ServerMessage): T | undefined;
}

interface RequestEntry extends Settle<unknown> {
  matcher: RequestMatcher<unknown>;
}

export class RequestQueue {
  private readonly entries: RequestEntry[] = [];

  get size(): number {
    return this.entries.length;
  }

  /** Registers a waiter; call before sending the request so no reply can slip past. */
  wait<T>(matcher: RequestMatcher<T>, timeoutMs?: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: RequestEntry = { matcher, resolve, reject, timer: null };
      entry.timer = startTimer(timeoutMs, () => {
        this.remove(entry);
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${matcher.what}`));
      });
      this.entries.push(entry);
    });
  }

  /** Offers a frame to the waiters in order; returns true if one took it. */
  offer(msg: ServerMessage): boolean {
    if (msg.type === 'error') {
      const first = this.entries[0];
      if (!first) return false;
      this.settle(first, () => first.reject(new Error(msg.error ?? 'Unknown error')));
      return true;
    }
    for (const entry of this.entries) {
      const value = entry.matcher.match(msg);
      if (value !== undefined) {
        this.settle(entry, () => entry.resolve(value));
        return true;
      }
    }
    return false;
  }

  rejectAll(err: Error): void {
    const all = this.entries.splice(0);
    for (const e of all) {
      if (e.timer) clearTimeout(e.timer);
      e.reject(err);
    }
  }

  private settle(entry: RequestEntry, fn: () => void): void {
    this.remove(entry);
    if (entry.timer) clearTimeout(entry.timer);
    fn();
  }

  private remove(entry: RequestEntry): void {
    const i = this.entries.indexOf(entry);
    if (i !== -1) this.entries.splice(i, 1);
  }
}

/** How many unclaimed `task_end` frames are remembered (oldest dropped first). */
export const TASK_END_MEMORY = 256;

interface TaskEndEntry extends Settle<ServerMessage> {
  sessionId: string;
  /** The bound since the connection dropped (see `detach`); null while it has not dropped under this waiter. */
  dropTimer: NodeJS.Timeout | null;
}

/** The connection is away: since when, how long waiters may outlive it, and why it went. */
interface Detached {
  at: number;
  ms: number;
  why: string;
}

export class TaskEndWaiters {
  private readonly waiters = new Map<string, TaskEndEntry[]>();
  private readonly unclaimed = new Map<string, ServerMessage>();
  private detached: Detached | null = null;

  constructor(private readonly memory = TASK_END_MEMORY) {}

  wait(sessionId: string, timeoutMs?: number): Promise<ServerMessage> {
    const early = this.unclaimed.get(sessionId);
    if (early) {
      this.unclaimed.delete(sessionId);
      return Promise.resolve(early);
    }
    return new Promise<ServerMessage>((resolve, reject) => {
      const entry: TaskEndEntry = { sessionId, resolve, reject, timer: null, dropTimer: null };
      entry.timer = startTimer(timeoutMs, () => {
        this.fail(
          entry,
          new Error(`Timed out after ${timeoutMs} ms waiting for task_end of session ${sessionId}`),
        );
      });
      const list = this.waiters.get(sessionId);
      if (list) list.push(entry);
      else this.waiters.set(sessionId, [entry]);
      if (this.detached) this.bound(entry, this.detached);
    });
  }

  /**
   * The connection dropped and will reconnect: every waiter is kept, but rejected unless its `task_end` arrives
   * within `ms` of now (also waiters added before `attach`). `why` says how the connection was lost.
   */
  detach(ms: number, why: string): void {
    if (this.detached) return; // the first drop starts the bound; a failed reconnect does not extend it
    this.detached = { at: Date.now(), ms, why };
    for (const list of this.waiters.values()) for (const w of list) this.bound(w, this.detached);
  }

  /** Registered again: waiters added from now on have no bound (those already bounded keep theirs). */
  attach(): void {
    this.detached = null;
  }

  /** Delivers a `task_end`; returns true if a waiter took it (otherwise it is remembered). */
  offer(msg: ServerMessage): boolean {
    const sid = msg.session_id;
    if (msg.type !== 'task_end' || sid === null) return false;
    const list = this.waiters.get(sid);
    if (list && list.length > 0) {
      this.waiters.delete(sid);
      for (const w of list) {
        clearTimers(w);
        w.resolve(msg);
      }
      return true;
    }
    this.unclaimed.delete(sid);
    this.unclaimed.set(sid, msg);
    if (this.unclaimed.size > this.memory) {
      const oldest = this.unclaimed.keys().next();
      if (!oldest.done) this.unclaimed.delete(oldest.value);
    }
    return false;
  }

  hasUnclaimed(sessionId: string): boolean {
    return this.unclaimed.has(sessionId);
  }

  /** Sessions with a waiter kept across a drop (bounded by `resumeWaitMs`) that is still waiting. */
  keptIds(): string[] {
    const ids: string[] = [];
    for (const [id, list] of this.waiters) if (list.some((w) => w.dropTimer !== null)) ids.push(id);
    return ids;
  }

  hasWaiter(sessionId: string): boolean {
    return (this.waiters.get(sessionId)?.length ?? 0) > 0;
  }

  rejectAll(err: Error): void {
    const all = [...this.waiters.values()].flat();
    this.waiters.clear();
    this.detached = null;
    for (const w of all) {
      clearTimers(w);
      w.reject(err);
    }
  }

  /** Starts the waiter's bound since the drop, unless it has one. */
  private bound(entry: TaskEndEntry, d: Detached): void {
    if (entry.dropTimer) return;
    const left = Math.max(0, d.at + d.ms - Date.now());
    entry.dropTimer = setTimeout(() => {
      this.fail(
        entry,
        new Error(
          `No task_end for session ${entry.sessionId} within ${d.ms} ms (resumeWaitMs) of losing the ` +
            `connection (${d.why}); the server may have ended the task while this client was away ` +
            `(its record: GET /sessions/${entry.sessionId})`,
        ),
      );
    }, left);
  }

  private fail(entry: TaskEndEntry, err: Error): void {
    clearTimers(entry);
    const list = this.waiters.get(entry.sessionId);
    if (list) {
      const i = list.indexOf(entry);
      if (i !== -1) list.splice(i, 1);
      if (list.length === 0) this.waiters.delete(entry.sessionId);
    }
    entry.reject(err);
  }
}

function clearTimers(entry: TaskEndEntry): void {
  if (entry.timer) clearTimeout(entry.timer);
  if (entry.dropTimer) clearTimeout(entry.dropTimer);
  entry.timer = null;
  entry.dropTimer = null;
}
