/**
 * `/api/sessions`: the AIP task sessions running now, with their task state history (aipd's addition to UFO's API);
 * `DELETE` cancels one. They are read from the one session store; `/sessions` has the durable records of all.
 */
import { notFoundDoc, ok } from '../route-docs.js';
import { aipError } from '../../../protocol/index.js';
import type { SessionRecord, TaskStateEntry } from '../../state/session-model.js';
import type { ApiDeps } from '../deps.js';
import { detail, json } from '../responses.js';
import type { Route } from '../router.js';

/** A task session as this API shows it. */
export interface SessionView {
  session_id: string;
  task_name: string;
  owner: string;
  executor: string;
  platform: string;
  state: string;
  started_at: string;
  history: readonly TaskStateEntry[];
}

/** The view of a live task session, or null for anything else. */
export function sessionView(r: SessionRecord): SessionView | null {
  if (!r.task || (r.status !== 'active' && r.status !== 'paused')) return null;
  return {
    session_id: r.id,
    task_name: r.task.task_name,
    owner: r.task.requester,
    executor: r.task.executor,
    platform: r.task.platform,
    state: r.task.state,
    started_at: r.created_at,
    history: r.task.state_history,
  };
}

/** Live task sessions listed at most (the rest are on `/sessions`). */
const LIVE_LIST_LIMIT = 1000;

export function liveSessionRoutes(deps: ApiDeps): Route[] {
  const notFound = () => detail(404, aipError('HTTP_SESSION_NOT_FOUND').message);
  return [
    {
      method: 'GET',
      path: '/api/sessions',
      doc: { summary: 'Tasks running on this node', tag: 'ufo', responses: { 200: ok('The live sessions') } },
      handle: async () => {
        const page = await deps.sessions.list(
          { session_type: 'task', status: ['active', 'paused'] },
          { limit: LIVE_LIST_LIMIT },
        );
        const views = page.items.map(sessionView).filter((v): v is SessionView => v !== null);
        return json(200, { sessions: views.reverse() });
      },
    },
    {
      method: 'GET',
      path: '/api/sessions/:id',
      doc: {
        summary: 'One task running on this node',
        tag: 'ufo',
        responses: { 200: ok('The live session'), 404: notFoundDoc },
      },
      handle: async ({ params }) => {
        const rec = await deps.sessions.get(params.id!);
        const view = rec ? sessionView(rec) : null;
        return view ? json(200, view) : notFound();
      },
    },
    {
      method: 'DELETE',
      path: '/api/sessions/:id',
      doc: {
        summary: 'Cancel a running task (on any node of a cluster)',
        tag: 'ufo',
        responses: { 200: ok('Cancelled'), 404: notFoundDoc },
      },
      handle: async ({ params }) => {
        const id = params.id!;
        if (!(await deps.tasks.cancelAnywhere(id, aipError('CANCELLED_BY_API').message, false)))
          return notFound();
        deps.log.info({ session_id: id }, 'task cancelled over HTTP');
        return json(200, { status: 'cancelled', session_id: id });
      },
    },
  ];
}
