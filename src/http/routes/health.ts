/** Liveness: `/healthz` (no key) and UFO's `/api/health` and `/api/clients` (ufo-aip.md §9.6). */
import type { ApiDeps } from '../deps.js';
import { json } from '../responses.js';
import type { Route } from '../router.js';

export function healthRoutes(deps: ApiDeps): Route[] {
  return [
    { method: 'GET', path: '/healthz', auth: false, handle: () => json(200, { status: 'ok' }) },
    {
      method: 'GET',
      path: '/api/health',
      handle: () => json(200, { status: 'healthy', online_clients: deps.directory.list() }),
    },
    {
      method: 'GET',
      path: '/api/clients',
      handle: () => json(200, { online_clients: deps.directory.list() }),
    },
  ];
}
