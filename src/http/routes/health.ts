/** Liveness: `/healthz` (no key) and UFO's `/api/health` and `/api/clients` (ufo-aip.md §9.6). */
import { ok } from '../route-docs.js';
import type { ApiDeps } from '../deps.js';
import { json } from '../responses.js';
import type { Route } from '../router.js';

export function healthRoutes(deps: ApiDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/healthz',
      auth: false,
      doc: { summary: 'Liveness: the process answers', tag: 'operations', responses: { 200: ok('Alive') } },
      handle: () => json(200, { status: 'ok' }),
    },
    {
      method: 'GET',
      path: '/api/health',
      doc: {
        summary: 'UFO: health and online clients',
        tag: 'ufo',
        responses: { 200: ok('Healthy, with the online client ids') },
      },
      handle: () => json(200, { status: 'healthy', online_clients: deps.directory.list() }),
    },
    {
      method: 'GET',
      path: '/api/clients',
      doc: { summary: 'UFO: online client ids', tag: 'ufo', responses: { 200: ok('The online client ids') } },
      handle: () => json(200, { online_clients: deps.directory.list() }),
    },
  ];
}
