/** UFO's HTTP API and aipd's own routes, as one router of route modules (ufo-aip.md §9.6). */
import type { ApiDeps } from './deps.js';
import { Router, type HeadLimits } from './router.js';
import { clientRoutes } from './routes/clients.js';
import { dispatchRoutes } from './routes/dispatch.js';
import { healthRoutes } from './routes/health.js';
import { liveSessionRoutes } from './routes/live-sessions.js';
import { opsRoutes } from './routes/ops.js';
import { remoteRoutes } from './routes/remote.js';
import { remoteFileRoutes } from './routes/remote-files.js';
import { remoteServiceRoutes } from './routes/remote-services.js';
import { sessionRoutes } from './routes/sessions.js';
import { sessionEventRoutes } from './routes/sessions-events.js';
import { sessionMetricsRoutes } from './routes/sessions-metrics.js';
import { taskResultRoutes } from './routes/task-results.js';

/**
 * Every route module, in registration order. A new REST resource is one more module here. (Order does not decide
 * matching: literal path segments win over parameters, see router.ts.)
 */
export const ROUTE_MODULES = [
  healthRoutes,
  dispatchRoutes,
  taskResultRoutes,
  liveSessionRoutes,
  sessionRoutes,
  sessionEventRoutes,
  sessionMetricsRoutes,
  remoteRoutes,
  remoteFileRoutes,
  remoteServiceRoutes,
  opsRoutes,
  clientRoutes,
] as const;

export function createApi(apiKey: string, limits: HeadLimits, deps: ApiDeps): Router {
  const router = new Router(apiKey, limits);
  for (const module of ROUTE_MODULES) router.register(module(deps));
  return router;
}
