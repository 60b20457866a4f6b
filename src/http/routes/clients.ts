/**
 * `GET /clients`: the online clients with what the dashboard shows of each (role, platform, node, connected
 * time). UFO's /api/clients lists ids only, and stays as it is.
 */
import { z } from 'zod';
import type { ApiDeps } from '../deps.js';
import { ok } from '../route-docs.js';
import { json } from '../responses.js';
import type { Route } from '../router.js';

const ClientView = z.object({
  client_id: z.string(),
  client_type: z.enum(['device', 'constellation']),
  platform: z.string(),
  target_id: z.string().nullable(),
  node: z.string().describe('the cluster node it is connected to (this node without a cluster)'),
  connected_at: z.string(),
});

/** A directory that knows each client's node (the cluster one does). */
interface NodeAware {
  nodeOf(clientId: string): string | undefined;
}

export function clientRoutes(deps: ApiDeps): Route[] {
  const dir = deps.directory;
  const nodeOf = (id: string): string =>
    ('nodeOf' in dir ? (dir as unknown as NodeAware).nodeOf(id) : undefined) ?? deps.ops.nodeId;
  return [
    {
      method: 'GET',
      path: '/clients',
      doc: {
        summary: 'Online clients with role, platform, node and connected time',
        tag: 'operations',
        responses: { 200: ok('The clients', z.object({ clients: z.array(ClientView) })) },
      },
      handle: () =>
        json(200, {
          clients: [...dir.all()].map((c) => ({
            client_id: c.clientId,
            client_type: c.clientType,
            platform: c.platform,
            target_id: c.targetId,
            node: nodeOf(c.clientId),
            connected_at: c.connectedAt,
          })),
        }),
    },
  ];
}
