/**
 * A PATCH that changes the status of a session something is running: an AIP task (here or on another node of a
 * cluster), or a typed remote session live on this node. Its status is the server's to keep: the running task
 * writes it at its end, and a remote session's channels, execute calls and listeners close only when it ends. So
 * the record is never changed behind their back:
 * - a running task may only be cancelled (`cancelled`): it is, as DELETE /api/sessions/{id} does, and its
 *   requester gets `task_end`; any other status is refused (409, SESSION_LIVE_STATUS);
 * - a live remote session may be ended (`completed`, `failed` or `cancelled`): it is, with that status, as DELETE
 *   or the idle timeout end it; `active`, `paused` and `crashed` are refused (409).
 * Anything else in the same PATCH (context, checkpoint, runtime fields) is applied after the end.
 */
import { aipError } from '../../../protocol/index.js';
import type { PatchInput } from '../../records/session-service.js';
import { isTerminalStatus, type SessionRecord, type SessionStatus } from '../../state/session-model.js';
import type { HttpResponse } from '../../transport/http.js';
import type { ApiDeps } from '../deps.js';
import { detail } from '../responses.js';

/** The statuses a PATCH may give a running task: it is cancelled. */
const TASK_ENDS: readonly SessionStatus[] = ['cancelled'];
/** The statuses a PATCH may give a live remote session: it ends with that status. */
const REMOTE_ENDS: readonly SessionStatus[] = ['completed', 'failed', 'cancelled'];

/** The reason recorded when the PATCH gives none. */
const DEFAULT_REASON = 'status set over the REST API';

/**
 * What a status PATCH on `rec` must do first: `refuse` (the 409 answer), `ended` (a running task or live remote
 * session was ended; the rest of the PATCH follows), or `plain` (nothing runs it: the status table applies).
 */
export async function liveStatusChange(
  deps: ApiDeps,
  rec: SessionRecord,
  status: SessionStatus,
  reason: string | undefined,
): Promise<{ kind: 'plain' } | { kind: 'ended' } | { kind: 'refuse'; res: HttpResponse }> {
  if (status === rec.status || isTerminalStatus(rec.status)) return { kind: 'plain' };
  const refuse = (allowed: readonly SessionStatus[]): { kind: 'refuse'; res: HttpResponse } => ({
    kind: 'refuse',
    res: detail(
      409,
      aipError('SESSION_LIVE_STATUS', { sid: rec.id, status, allowed: allowed.join("', '") }).message,
    ),
  });
  if (rec.session_type === 'task' && (rec.status === 'active' || rec.status === 'paused')) {
    if (!TASK_ENDS.includes(status)) return refuse(TASK_ENDS);
    const text = reason ?? aipError('CANCELLED_BY_API').message;
    if (!(await deps.tasks.cancelAnywhere(rec.id, text, true))) return { kind: 'plain' }; // no node runs it
    deps.log.info({ session_id: rec.id }, 'running task cancelled: status set over the REST API');
    return { kind: 'ended' };
  }
  if (deps.remote.sessions.isLive(rec.id)) {
    if (!REMOTE_ENDS.includes(status)) return refuse(REMOTE_ENDS);
    if (await deps.remote.sessions.end(rec.id, status, reason ?? DEFAULT_REASON)) {
      deps.log.info({ session_id: rec.id, status }, 'remote session ended: status set over the REST API');
      return { kind: 'ended' };
    }
  }
  return { kind: 'plain' };
}

/** The PATCH without its status change, once `liveStatusChange` ended the session; null when nothing is left. */
export function restOfPatch(input: PatchInput): PatchInput | null {
  const rest: { -readonly [K in keyof PatchInput]: PatchInput[K] } = { ...input };
  delete rest.status;
  delete rest.reason;
  return Object.keys(rest).length > 0 ? rest : null;
}
