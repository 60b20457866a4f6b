/**
 * `POST /api/dispatch` (ufo-aip.md §9.6): sends a `task` frame to an online client, in UFO's validation order.
 * Q3 fixed: the dispatch id is recorded as an alias of the task name, so results can be found by either.
 */
import { Detail, ok } from '../route-docs.js';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { aipError } from '../../../protocol/index.js';
import { taskNameError } from '../../server/task-name.js';
import type { ApiDeps } from '../deps.js';
import { detail, json, parseJsonBody, validation } from '../responses.js';
import type { Route } from '../router.js';

/**
 * The body, as the OpenAPI document states it. The handler checks it by hand, in UFO's order (one error at a
 * time, `client_id` before `request`), which this schema describes but does not run.
 */
export const DispatchBody = z.object({
  client_id: z.string().describe('an online client'),
  request: z.string().describe('the user request (not blank)'),
  task_name: z.string().optional().describe('safe file name; a UUID when absent'),
});

export function dispatchRoutes(deps: ApiDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/dispatch',
      doc: {
        summary: 'UFO: send a task to an online client',
        tag: 'ufo',
        body: DispatchBody,
        responses: {
          200: ok('Dispatched'),
          400: ok('Empty request or client id, or a task name that is unsafe or too long', Detail),
          404: ok('The client is not online', Detail),
        },
      },
      body: 'json',
      handle: async ({ req }) => {
        const parsed = parseJsonBody(req.body);
        if (!parsed.ok) return parsed.res;
        const body = parsed.value;
        if (body === null || typeof body !== 'object' || Array.isArray(body))
          return validation('body', 'Input should be a valid dictionary', 'dict_type');
        const b = body as Record<string, unknown>;
        for (const key of ['client_id', 'request'] as const) {
          if (!(key in b)) return validation(key, 'Field required', 'missing');
          if (typeof b[key] !== 'string')
            return validation(key, 'Input should be a valid string', 'string_type');
        }
        if ('task_name' in b && typeof b.task_name !== 'string')
          return validation('task_name', 'Input should be a valid string', 'string_type');
        const request = b.request as string;
        const clientId = b.client_id as string;
        if (!request.trim()) return detail(400, aipError('HTTP_EMPTY_REQUEST').message);
        if (!clientId) return detail(400, aipError('HTTP_EMPTY_CLIENT_ID').message);
        const taskName = 'task_name' in b ? (b.task_name as string) : randomUUID();
        const badName = taskNameError(taskName);
        if (badName) return detail(400, badName.message);
        const target = deps.directory.link(clientId);
        if (!target) return detail(404, aipError('HTTP_CLIENT_OFFLINE').message);
        const sessionId = randomUUID();
        const sent = target.send({
          type: 'task',
          status: 'continue',
          user_request: request,
          task_name: taskName,
          session_id: sessionId,
          timestamp: new Date().toISOString(),
          response_id: randomUUID(),
        });
        if (!sent) return detail(404, aipError('HTTP_CLIENT_OFFLINE').message);
        await deps.results.alias(sessionId, taskName);
        deps.log.info(
          { client_id: clientId, task_name: taskName, dispatch_id: sessionId },
          'task dispatched over HTTP',
        );
        return json(200, {
          status: 'dispatched',
          task_name: taskName,
          client_id: clientId,
          session_id: sessionId,
        });
      },
    },
  ];
}
