/**
 * After a reconnect: did a task this client still waits for end while it was away?
 *
 * A server that stayed up while this client's connection dropped cancels the tasks the client requested, and tells
 * nobody (ufo-aip.md §8.4, as UFO's server does). Its `task_end` never comes, so a waiter kept across the drop
 * would wait out the whole `resumeWaitMs` (10 min by default). So once registered again, the client reads each such
 * session's record (`GET /sessions/{id}`, with the same API key, on the WebSocket URL's host) and, if the record has
 * ended, hands the waiter a `task_end` made from it: the recorded status (`completed`, or `failed` for failed and
 * cancelled), result and error. A record that has not ended (the task runs on, or waits to be resumed), a missing
 * one, or a failed request changes nothing: the waiter keeps waiting, bounded as before.
 */
import { validateServerMessage, type ServerMessage } from '../../protocol/index.js';

/** How often, while waiters kept across a drop remain, their records are read again after a reconnect. */
export const DEFAULT_RESUME_CHECK_MS = 5_000;

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
 * has not ended, is not a task, or cannot be read within `timeoutMs`.
 */
export async function endedTaskEnd(
  base: string,
  token: string,
  sessionId: string,
  timeoutMs: number,
): Promise<ServerMessage | null> {
  let rec: RecordJson;
  try {
    const res = await fetch(`${base}/sessions/${encodeURIComponent(sessionId)}`, {
      headers: { 'x-api-key': token },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (res.status !== 200) return null;
    rec = (await res.json()) as RecordJson;
  } catch {
    return null;
  }
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
