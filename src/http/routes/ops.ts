/**
 * Operations: `/metrics` (Prometheus; the API key or --metrics-token), `/readyz` (the store, and Redis in a
 * cluster, answer), `/openapi.json` and its docs page `/docs` (swagger-ui-dist's files, served from the package),
 * and the dashboard `/ui` (its Vite build under dist/ui).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import type { ApiDeps } from '../deps.js';
import { openApiDocument } from '../openapi.js';
import { Detail, ok } from '../route-docs.js';
import { detail, json } from '../responses.js';
import type { Route } from '../router.js';
import { packageRoot, StaticFolder } from '../../ops/static-files.js';
import type { HttpResponse } from '../../transport/http.js';
import { DOCS_HTML, DOCS_INIT_JS } from './docs-page.js';

const text = (status: number, body: string | Uint8Array, type: string, cache = 'no-store'): HttpResponse => ({
  status,
  body,
  headers: { 'content-type': type, 'cache-control': cache },
});

const sha = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** The key or token a request carries: `X-API-Key`, or `Authorization: Bearer …`. */
function credential(headers: Readonly<Record<string, string>>): string | undefined {
  const bearer = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(headers.authorization ?? '');
  return headers['x-api-key'] ?? bearer?.[1];
}

export function opsRoutes(deps: ApiDeps): Route[] {
  const ops = deps.ops;
  const accepted = [sha(ops.apiKey), ...(ops.metricsToken ? [sha(ops.metricsToken)] : [])];
  const root = packageRoot();
  const swagger = new StaticFolder(
    dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json')),
  );
  const ui = new StaticFolder(join(root, 'dist', 'ui'));
  const uiAssets = new StaticFolder(join(root, 'dist', 'ui', 'assets'));
  let document: string | null = null;
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const info = {
    title: 'aipd',
    version: pkg.version,
    description:
      'The HTTP API of aipd, an AIP server: UFO’s /api routes, durable sessions (/sessions), remote execution on ' +
      'devices, and operations. The WebSocket endpoint /ws (AIP) is not an HTTP route and is not described here.',
  };
  const staticAnswer = (folder: StaticFolder, name: string): HttpResponse => {
    const f = folder.get(name);
    return f ? text(200, f.body, f.contentType, 'public, max-age=3600') : detail(404, 'No such file');
  };
  return [
    {
      method: 'GET',
      path: '/metrics',
      // Checked here: the API key or the metrics token (the router knows only the API key).
      auth: false,
      doc: {
        summary: 'Prometheus metrics (text exposition format); the API key or --metrics-token as Bearer',
        tag: 'operations',
        responses: {
          200: { description: 'The metrics', contentType: 'text/plain' },
          401: ok('Missing or wrong key or token', Detail),
          404: ok('Metrics are off (--metrics off)', Detail),
        },
      },
      handle: async ({ req }) => {
        if (!ops.metrics) return detail(404, 'Metrics are off (--metrics off)');
        const given = credential(req.headers);
        if (given === undefined || !accepted.some((d) => timingSafeEqual(d, sha(given))))
          return detail(401, 'Missing or wrong API key or metrics token');
        const { text: body, contentType } = await ops.metrics.scrape();
        return text(200, body, contentType);
      },
    },
    {
      method: 'GET',
      path: '/readyz',
      auth: false,
      doc: {
        summary: 'Readiness: the session store (and Redis, in a cluster) answer; 503 when one does not',
        tag: 'operations',
        responses: {
          200: ok(
            'Ready',
            z.object({ status: z.literal('ready'), checks: z.record(z.string(), z.boolean()) }),
          ),
          503: ok('Not ready: the checks say which', z.object({ status: z.literal('unready') })),
        },
      },
      handle: async () => {
        const checks = await ops.ready();
        const good = Object.values(checks).every(Boolean);
        return json(good ? 200 : 503, { status: good ? 'ready' : 'unready', checks });
      },
    },
    {
      method: 'GET',
      path: '/openapi.json',
      doc: {
        summary: 'This document (OpenAPI 3.1)',
        tag: 'operations',
        responses: { 200: ok('The OpenAPI document') },
      },
      handle: () => {
        document ??= JSON.stringify(openApiDocument(ops.routes(), info));
        return text(200, document, 'application/json');
      },
    },
    {
      method: 'GET',
      path: '/docs',
      auth: false,
      doc: {
        summary: 'API docs page (Swagger UI, served from the package; it asks for the API key)',
        tag: 'operations',
        responses: { 200: { description: 'HTML', contentType: 'text/html' } },
      },
      handle: () => text(200, DOCS_HTML, 'text/html; charset=utf-8'),
    },
    {
      method: 'GET',
      path: '/docs/:file',
      auth: false,
      doc: {
        summary: 'The docs page’s script and Swagger UI’s files',
        tag: 'operations',
        responses: {
          200: { description: 'A static file', contentType: 'application/octet-stream' },
          404: ok('No such file', Detail),
        },
      },
      handle: ({ params }) =>
        params.file === 'init.js'
          ? text(200, DOCS_INIT_JS, 'text/javascript; charset=utf-8')
          : staticAnswer(swagger, params.file!),
    },
    {
      method: 'GET',
      path: '/ui',
      auth: false,
      doc: {
        summary: 'The dashboard (it asks for the API key and keeps it in session storage)',
        tag: 'operations',
        responses: { 200: { description: 'HTML', contentType: 'text/html' }, 503: ok('Not built', Detail) },
      },
      handle: () => {
        const f = ui.get('index.html');
        return f
          ? text(200, f.body, f.contentType)
          : detail(503, 'The dashboard is not built: run npm run build');
      },
    },
    {
      method: 'GET',
      path: '/ui/assets/:file',
      auth: false,
      doc: {
        summary: 'The dashboard’s scripts and styles',
        tag: 'operations',
        responses: {
          200: { description: 'A static file', contentType: 'application/octet-stream' },
          404: ok('No such file', Detail),
        },
      },
      handle: ({ params }) => staticAnswer(uiAssets, params.file!),
    },
  ];
}
