/**
 * Services of a remote session: `POST /sessions/{id}/services {"port": N}` opens a listener on the server
 * (loopback and an ephemeral port by default) forwarded to port N on the device; DELETE closes it.
 */
import { Detail, noContentDoc, notFoundDoc, ok } from '../route-docs.js';
import { z } from 'zod';
import type { ApiDeps } from '../deps.js';
import { json, noContent } from '../responses.js';
import type { Route } from '../router.js';
import { parseBody } from '../validation.js';
import { liveDocs, remoteError } from './remote-errors.js';

const port = z.number().int().min(1).max(65535);
const OpenBody = z.object({ port, local_port: z.number().int().min(0).max(65535).optional() });

export function remoteServiceRoutes(deps: ApiDeps): Route[] {
  const remote = deps.remote;
  return [
    {
      method: 'GET',
      path: '/sessions/:id/services',
      doc: {
        summary: 'Open service listeners (port forwards)',
        tag: 'remote',
        responses: { 200: ok('The listeners'), ...liveDocs },
      },
      handle: async ({ params }) => {
        try {
          return json(200, { services: remote.services.list(await remote.sessions.get(params.id!)) });
        } catch (err) {
          return remoteError(err);
        }
      },
    },
    {
      method: 'POST',
      path: '/sessions/:id/services',
      doc: {
        summary: 'Forward a local port to a port on the device',
        tag: 'remote',
        body: OpenBody,
        responses: {
          201: ok('The listener'),
          403: ok('Port not allowed by the device', Detail),
          404: notFoundDoc,
          409: ok('Local port in use', Detail),
        },
      },
      body: 'json',
      handle: async ({ params, req }) => {
        const parsed = parseBody(OpenBody, req.body);
        if (!parsed.ok) return parsed.res;
        try {
          const live = await remote.sessions.get(params.id!);
          return json(201, await remote.services.open(live, parsed.value.port, parsed.value.local_port ?? 0));
        } catch (err) {
          const code = err instanceof Error && 'code' in err ? err.code : null;
          if (code === 'EACCES')
            return json(403, {
              detail: `Local port ${parsed.value.local_port ?? 0} needs privileges aipd lacks`,
            });
          if (code === 'EADDRINUSE')
            return json(409, { detail: `Local port ${parsed.value.local_port ?? 0} is already in use` });
          return remoteError(err);
        }
      },
    },
    {
      method: 'DELETE',
      path: '/sessions/:id/services/:port',
      doc: {
        summary: 'Close a service listener',
        tag: 'remote',
        responses: {
          204: noContentDoc,
          ...liveDocs,
          404: ok('No such session, or no listener for that port', Detail),
        },
      },
      handle: async ({ params }) => {
        const p = Number(params.port);
        if (!Number.isInteger(p) || p < 1 || p > 65535)
          return json(422, {
            detail: [
              {
                type: 'int_parsing',
                loc: ['path', 'port'],
                msg: 'Input should be a valid port number',
                input: params.port,
              },
            ],
          });
        try {
          remote.services.close(await remote.sessions.get(params.id!), p);
          return noContent();
        } catch (err) {
          return remoteError(err);
        }
      },
    },
  ];
}
