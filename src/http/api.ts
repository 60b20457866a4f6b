/**
 * UFO's HTTP API on the WebSocket port (ufo-aip.md §9.6), transport-agnostic: a request in, a status and a JSON
 * body out. Q2 (task_result never hangs, results kept) and Q3 (the dispatch id maps to the real session) are fixed.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { aipError } from '../../protocol/index.js';
import type { Logger } from '../logger.js';
import type { ClientRegistry } from '../server/registry.js';
import { isSafeTaskName } from '../server/task-name.js';
import type { TaskService } from '../server/tasks.js';
import type { HttpRequestData, HttpResponseData } from '../transport/uws.js';

export interface ApiDeps {
  readonly apiKey: string;
  readonly registry: ClientRegistry;
  readonly tasks: TaskService;
  readonly log: Logger;
}

const json = (status: number, body: unknown): HttpResponseData => ({ status, body });
const detail = (status: number, text: string): HttpResponseData => json(status, { detail: text });

export function createApi(deps: ApiDeps): (req: HttpRequestData) => HttpResponseData {
  const keyDigest = digest(deps.apiKey);
  /** dispatch session id (returned by /api/dispatch) → task_name, so results can be found by either (Q3). */
  const dispatched = new LRUCache<string, string>({ max: 10_000 });

  const routes: Record<string, (req: HttpRequestData, param: string) => HttpResponseData> = {
    'GET /api/clients': () => json(200, { online_clients: deps.registry.list() }),
    'GET /api/health': () => json(200, { status: 'healthy', online_clients: deps.registry.list() }),
    'POST /api/dispatch': (req) => dispatch(req),
    'GET /api/task_result/:name': (_req, name) => taskResult(name),
    'GET /api/sessions': () => json(200, { sessions: [...deps.tasks.live.values()].map((l) => deps.tasks.describe(l)) }),
    'GET /api/sessions/:id': (_req, id) => {
      const live = deps.tasks.live.get(id);
      return live ? json(200, deps.tasks.describe(live)) : detail(404, aipError('HTTP_SESSION_NOT_FOUND').message);
    },
    'DELETE /api/sessions/:id': (_req, id) => {
      if (!deps.tasks.cancelById(id)) return detail(404, aipError('HTTP_SESSION_NOT_FOUND').message);
      deps.log.info({ session_id: id }, 'task cancelled over HTTP');
      return json(200, { status: 'cancelled', session_id: id });
    },
  };

  function dispatch(req: HttpRequestData): HttpResponseData {
    let body: unknown;
    try {
      body = JSON.parse(req.body.toString('utf8') || 'null');
    } catch {
      return validation('body', 'JSON decode error', 'json_invalid');
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return validation('body', 'Input should be a valid dictionary', 'dict_type');
    const b = body as Record<string, unknown>;
    for (const key of ['client_id', 'request'] as const) {
      if (!(key in b)) return validation(key, 'Field required', 'missing');
      if (typeof b[key] !== 'string') return validation(key, 'Input should be a valid string', 'string_type');
    }
    if ('task_name' in b && typeof b.task_name !== 'string') return validation('task_name', 'Input should be a valid string', 'string_type');
    const request = b.request as string;
    const clientId = b.client_id as string;
    if (!request.trim()) return detail(400, aipError('HTTP_EMPTY_REQUEST').message);
    if (!clientId) return detail(400, aipError('HTTP_EMPTY_CLIENT_ID').message);
    const taskName = 'task_name' in b ? (b.task_name as string) : randomUUID();
    if (!isSafeTaskName(taskName)) return detail(400, aipError('HTTP_INVALID_TASK_NAME').message);
    const target = deps.registry.get(clientId);
    if (!target) return detail(404, aipError('HTTP_CLIENT_OFFLINE').message);
    const sessionId = randomUUID();
    const sent = target.conn.send({
      type: 'task',
      status: 'continue',
      user_request: request,
      task_name: taskName,
      session_id: sessionId,
      timestamp: new Date().toISOString(),
      response_id: randomUUID(),
    });
    if (!sent) return detail(404, aipError('HTTP_CLIENT_OFFLINE').message);
    dispatched.set(sessionId, taskName);
    deps.log.info({ client_id: clientId, task_name: taskName, dispatch_id: sessionId }, 'task dispatched over HTTP');
    return json(200, { status: 'dispatched', task_name: taskName, client_id: clientId, session_id: sessionId });
  }

  function taskResult(nameOrId: string): HttpResponseData {
    const name = dispatched.get(nameOrId) ?? nameOrId;
    if (!isSafeTaskName(name)) return detail(400, aipError('HTTP_INVALID_TASK_NAME').message);
    const entry = deps.tasks.results.get(name);
    if (!entry || entry.status === 'pending') return json(200, { status: 'pending' });
    return json(200, { status: 'done', result: entry.result, task_status: entry.task_status, error: entry.error, session_id: entry.session_id });
  }

  return (req) => {
    if (req.path === '/healthz') return req.method === 'GET' ? json(200, { status: 'ok' }) : detail(405, 'Method Not Allowed');
    if (!req.path.startsWith('/api/')) return detail(404, aipError('HTTP_NOT_FOUND').message);
    const route = match(req.method, req.path);
    if (!route) return detail(404, aipError('HTTP_NOT_FOUND').message);
    if (route === 'method') return detail(405, 'Method Not Allowed');
    const key = req.headers['x-api-key'];
    if (key === undefined) return validationAt(['header', 'X-API-Key'], 'Field required', 'missing');
    if (!timingSafeEqual(digest(key), keyDigest)) return detail(401, aipError('HTTP_INVALID_API_KEY').message);
    return routes[route.key]!(req, route.param);
  };

  function match(method: string, path: string): { key: string; param: string } | 'method' | null {
    let pathMatched = false;
    for (const key of Object.keys(routes)) {
      const [m, pattern] = key.split(' ') as [string, string];
      const param = matchPath(pattern, path);
      if (param === null) continue;
      if (m === method) return { key, param };
      pathMatched = true;
    }
    return pathMatched ? 'method' : null;
  }
}

function matchPath(pattern: string, path: string): string | null {
  const colon = pattern.indexOf(':');
  if (colon === -1) return pattern === path ? '' : null;
  const prefix = pattern.slice(0, colon);
  if (!path.startsWith(prefix)) return null;
  const rest = path.slice(prefix.length);
  if (!rest || rest.includes('/')) return null;
  try {
    return decodeURIComponent(rest);
  } catch {
    return null;
  }
}

/** FastAPI-shaped 422 body, as UFO's clients would see it. */
function validation(field: string, msg: string, type: string): HttpResponseData {
  return validationAt(['body', field], msg, type);
}
function validationAt(loc: string[], msg: string, type: string): HttpResponseData {
  return json(422, { detail: [{ type, loc, msg, input: null }] });
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
