/** `GET /api/task_result/{name}`: by task name or dispatch id; never hangs (Q2), `pending` until done. */
import { Detail, ok } from '../route-docs.js';
import { taskNameError } from '../../server/task-name.js';
import type { ApiDeps } from '../deps.js';
import { detail, json } from '../responses.js';
import type { Route } from '../router.js';

export function taskResultRoutes(deps: ApiDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/api/task_result/:name',
      doc: {
        summary: 'UFO: a task’s result by task name or dispatch id',
        tag: 'ufo',
        responses: {
          200: ok('The result, or status pending'),
          400: ok('Not a safe task name, or longer than 256 characters', Detail),
        },
      },
      handle: async ({ params }) => {
        const nameOrId = params.name!;
        const name = (await deps.results.resolveAlias(nameOrId)) ?? nameOrId;
        const badName = taskNameError(name);
        if (badName) return detail(400, badName.message);
        const entry = await deps.results.get(name);
        if (!entry || entry.status === 'pending') return json(200, { status: 'pending' });
        return json(200, {
          status: 'done',
          result: entry.result,
          task_status: entry.task_status,
          error: entry.error,
          session_id: entry.session_id,
        });
      },
    },
  ];
}
