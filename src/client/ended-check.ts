/**
 * After a reconnect: did a task this client still waits for end while it was away?
 *
 * A server that stayed up while this client's connection dropped cancels the tasks the client requested, and tells
 * nobody (ufo-aip.md §8.4, as UFO's server does). Its `task_end` never comes, so a waiter kept across the drop
 * would wait out the whole `resumeWaitMs` (10 min by default). So once registered again, the client reads each such
 * session's record (`GET /sessions/{id}`, with the same API key, on the WebSocket URL's host) and, if the record has
 * ended, hands the waiter a `task_end` made from it: the recorded status (`completed`, or `failed` for failed and
 * cancelled), result and error. A record that has not ended (the task runs on, or waits to be resumed) or a missing
 * one changes nothing: the waiter keeps waiting, bounded as before. A read that fails (a refused key, a proxy that
 * forwards only `/ws`, no route to the host) changes nothing either, and is logged once per round at warn.
 *
 * The record is written before the server sends `task_end`, so a read can settle a waiter just before the frame
 * itself arrives; that frame then waits unclaimed (TaskEndWaiters keeps a bounded number), harmlessly.
 */
import type { Logger } from 'pino';
import { validateServerMessage, type ServerMessage } from '../../protocol/index.js';
import type { TaskEndWaiters } from './pending.js';

/** How often, while waiters kept across a drop remain, their records are read again after a reconnect. */
export const DEFAULT_RESUME_CHECK_MS = 5_000;
/** Records read at once, at most, in one round. */
const READS_AT_ONCE = 8;
/** A read's time limit when the client's request timeout is not a finite positive number. */
const FALLBACK_READ_TIMEOUT_MS = 30_000;

const ENDED = new Set(['completed', 'failed', 'cancelled']);

/** The HTTP base of the server whose WebSocket endpoint is `wsUrl` (ws://h:p/ws → http://h:p). */
export function httpBase(wsUrl: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = u.pathname.replace(/\/ws\/?$/, '');
  u.search = '';
  u.hash = '';
  return u.toString().replace(/\/$/, '');
}

interface RecordJson {
  status?: unknown;
  updated_at?: unknown;
  task?: { task_name?: unknown; result?: unknown; error?: unknown } | null;
}

/**
 * The `task_end` that session `sessionId`'s record stands for, when the record says the task ended; null when it
 * has not ended, is not a task, or does not exist (404). Throws when the record cannot be read: another HTTP status
 * (401 for a refused key), a network error, or no answer within `timeoutMs`.
 */
export async function endedTaskEnd(
  base: string,
  token: string,
  sessionId: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ServerMessage | null> {
  const limit = Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : FALLBACK_READ_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(limit);
  const res = await fetch(`${base}/sessions/${encodeURIComponent(sessionId)}`, {
    headers: { 'x-api-key': token },
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  });
  if (res.status === 404) return null;
  if (res.status !== 200) throw new Error(`GET /sessions/${sessionId} answered HTTP ${res.status}`);
  const rec = (await res.json()) as RecordJson;
  if (typeof rec.status !== 'string' || !ENDED.has(rec.status) || !rec.task) return null;
  const completed = rec.status === 'completed';
  const error = typeof rec.task.error === 'string' ? rec.task.error : null;
  const decoded = validateServerMessage({
    type: 'task_end',
    status: completed ? 'completed' : 'failed',
    session_id: sessionId,
    task_name: typeof rec.task.task_name === 'string' ? rec.task.task_name : null,
    timestamp: typeof rec.updated_at === 'string' ? rec.updated_at : null,
    error: completed ? null : (error ?? `the task ended ${rec.status} while this client was away`),
    result: rec.task.result ?? null,
  });
  return decoded.ok ? decoded.value : null;
}

export interface EndedCheckOptions {
  url: string;
  token: string;
  /** `resumeCheckMs`: between rounds while kept waiters remain; 0 turns the check off. */
  everyMs: number;
  /** Each read's time limit (the client's `requestTimeoutMs`). */
  timeoutMs: number;
  waiters: TaskEndWaiters;
  /** Whether the client is registered on an open socket (rounds go on only then). */
  isOpen: () => boolean;
  log: Logger;
}

/** Rounds of record reads for the waiters kept across a drop: one at each registration, then every `everyMs`. */
export class EndedCheck {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  private again = false;
  private abort: AbortController | null = null;

  constructor(private readonly o: EndedCheckOptions) {}

  /** Registered again: a round now (or right after the one running), then every `everyMs` while needed. */
  start(): void {
    if (this.o.everyMs <= 0) return;
    this.clearTimer();
    if (this.running) this.again = true;
    else void this.round();
  }

  /** Disconnected or closed: no more rounds, and the reads in flight are abandoned. */
  stop(): void {
    this.clearTimer();
    this.again = false;
    this.abort?.abort();
    this.abort = null;
  }

  private async round(): Promise<void> {
    this.running = true;
    const abort = (this.abort = new AbortController());
    let problem: string | null = null;
    try {
      const base = httpBase(this.o.url);
      const ids = this.o.waiters.keptIds();
      for (let i = 0; i < ids.length && !abort.signal.aborted; i += READS_AT_ONCE) {
        await Promise.all(
          ids.slice(i, i + READS_AT_ONCE).map(async (id) => {
            try {
              const end = await endedTaskEnd(base, this.o.token, id, this.o.timeoutMs, abort.signal);
              if (end && !abort.signal.aborted && this.o.waiters.hasWaiter(id)) {
                this.o.log.info(
                  { sessionId: id, status: end.status },
                  'task ended while disconnected (its record)',
                );
                this.o.waiters.offer(end);
              }
            } catch (err) {
              if (!abort.signal.aborted) problem ??= err instanceof Error ? err.message : String(err);
            }
          }),
        );
      }
    } catch (err) {
      problem ??= err instanceof Error ? err.message : String(err);
    } finally {
      this.running = false;
      if (this.abort === abort) this.abort = null;
    }
    if (problem !== null)
      this.o.log.warn({ problem }, 'could not read the records of the tasks waited for across the drop');
    // A registration during this round (even one after a stop that abandoned it) asks for another round.
    if (this.again && this.o.isOpen()) {
      this.again = false;
      return void this.round();
    }
    if (abort.signal.aborted || !this.o.isOpen()) return;
    if (this.o.waiters.keptIds().length > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.round();
      }, this.o.everyMs);
      this.timer.unref();
    }
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
