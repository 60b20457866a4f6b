/** `/api/sessions`: the sessions running now, with their status history; `DELETE` cancels one. */
import { aipError } from '../../../protocol/index.js';
import type { SessionRecord } from '../../state/session-store.js';
import type { ApiDeps } from '../deps.js';
import { detail, json } from '../responses.js';
import type { Route } from '../router.js';

/** A session as this API shows it. */
export interface SessionView {
  session_id: string;
  task_name: string;
  owner: string;
  executor: string;
  platform: string;
  state: string;
  started_at: string;
  history: SessionRecord['history'];
}

export function sessionView(r: SessionRecord): SessionView {
  return {
    session_id: r.id,
    task_name: r.taskName,
    owner: r.ownerId,
    executor: r.executorId,
    platform: r.platform,
    state: r.state,
    started_at: r.createdAt,
    history: r.history,
  };
}

export function liveSessionRoutes(deps: ApiDeps): Route[] {
  const notFound = () => detail(404, aipError('HTTP_SESSION_NOT_FOUND').message);
  return [
    {
      method: 'GET',
      path: '/api/sessions',
      handle: async () => json(200, { sessions: (await deps.sessions.list()).map(sessionView) }),
    },
    {
      method: 'GET',
      path: '/api/sessions/:id',
      handle: async ({ params }) => {
        const rec = await deps.sessions.get(params.id!);
        return rec ? json(200, sessionView(rec)) : notFound();
      },
    },
    {
      method: 'DELETE',
      path: '/api/sessions/:id',
      handle: ({ params }) => {
        const id = params.id!;
        if (!deps.tasks.cancelById(id)) return notFound();
        deps.log.info({ session_id: id }, 'task cancelled over HTTP');
        return json(200, { status: 'cancelled', session_id: id });
      },
    },
  ];
}
