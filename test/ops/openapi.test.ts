/**
 * The OpenAPI document at /openapi.json, read over real HTTP: it validates against the OpenAPI 3.1 schema
 * (@seriousme/openapi-schema-validator), every registered route is in it and everything in it is a registered
 * route, request bodies are the zod schemas the routes validate with, and /docs serves Swagger UI from the package.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aipError } from '../../protocol/index.js';
import { openApiPath } from '../../src/http/openapi.js';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;
let base: string;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document is read field by field
let doc: any;

beforeAll(async () => {
  server = await startTestServer();
  base = `http://127.0.0.1:${server.port}`;
  const r = await fetch(`${base}/openapi.json`, { headers: { 'x-api-key': TEST_KEY } });
  expect(r.status).toBe(200);
  doc = await r.json();
});
afterAll(() => server.close());

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const NO_ROUTE = JSON.stringify(aipError('HTTP_NOT_FOUND').message);

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const v = new Validator();
    const res = await v.validate(doc);
    expect(res.errors ?? []).toEqual([]);
    expect(res.valid).toBe(true);
    expect(v.version).toBe('3.1');
  });

  it('documents every registered route, and every documented route is registered and answers', async () => {
    const registered = server.http.list().map((r) => `${r.method} ${openApiPath(r.path)}`);
    const documented: string[] = [];
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>))
      for (const m of Object.keys(item))
        if (METHODS.includes(m)) documented.push(`${m.toUpperCase()} ${path}`);
    expect(documented.sort()).toEqual([...registered].sort());
    expect(registered.length).toBeGreaterThanOrEqual(37);
    // UFO's routes, the session records, remote execution and operations are all there
    for (const must of [
      'POST /api/dispatch',
      'GET /api/task_result/{name}',
      'GET /api/clients',
      'POST /sessions',
      'GET /sessions/{id}/events',
      'POST /sessions/{id}/execute',
      'POST /sessions/{id}/upload',
      'GET /sessions/{id}/download_single',
      'DELETE /sessions/{id}/services/{port}',
      'GET /metrics',
      'GET /readyz',
    ])
      expect(documented).toContain(must);
    // every documented route exists on the server: none answers 404 "no such route" or 405
    for (const entry of documented) {
      const [method, path] = entry.split(' ') as [string, string];
      const concrete = path.replace(/\{[^}]+\}/g, 'x');
      const r = await fetch(`${base}${concrete}`, {
        method,
        headers: { 'x-api-key': 'wrong-key' },
        redirect: 'manual',
      });
      const body = await r.text();
      expect(r.status, entry).not.toBe(405);
      expect(body, entry).not.toContain(NO_ROUTE);
      expect(server.http.routeOf(method, concrete), entry).toBe(
        server.http.list().find((x) => x.method === method && openApiPath(x.path) === path)?.path,
      );
    }
  });

  it('states request bodies from the zod schemas the routes validate with', () => {
    const create = doc.paths['/sessions'].post.requestBody.content['application/json'].schema;
    expect(create.required).toEqual(expect.arrayContaining(['agent_id', 'session_type']));
    expect(create.properties.agent_id).toMatchObject({ type: 'string', minLength: 1, maxLength: 256 });
    expect(create.properties.status.enum).toContain('paused');
    const exec = doc.paths['/sessions/{id}/execute'].post.requestBody.content['application/json'].schema;
    expect(exec.oneOf ?? exec.anyOf).toHaveLength(2);
    const list = doc.paths['/sessions'].get.parameters.map((p: { name: string }) => p.name);
    expect(list).toEqual(expect.arrayContaining(['status', 'agent_id', 'limit', 'cursor']));
    expect(doc.paths['/healthz'].get.security).toEqual([]);
    expect(doc.paths['/sessions/{id}'].get.parameters[0]).toMatchObject({
      name: 'id',
      in: 'path',
      required: true,
    });
  });

  it('needs the API key', async () => {
    expect((await fetch(`${base}/openapi.json`)).status).toBe(422);
    expect((await fetch(`${base}/openapi.json`, { headers: { 'x-api-key': 'nope' } })).status).toBe(401);
  });
});

describe('GET /docs', () => {
  it('serves Swagger UI from the package (no CDN): the page, its script and styles', async () => {
    const page = await (await fetch(`${base}/docs`)).text();
    const srcs = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(srcs).toEqual(['/docs/swagger-ui.css', '/docs/swagger-ui-bundle.js', '/docs/init.js']);
    for (const src of srcs) {
      const r = await fetch(`${base}${src}`);
      expect(r.status, src).toBe(200);
      expect((await r.arrayBuffer()).byteLength, src).toBeGreaterThan(500);
    }
    expect(page).not.toMatch(/https?:\/\//);
    expect((await fetch(`${base}/docs/..%2Fpackage.json`)).status).toBe(404);
    expect((await fetch(`${base}/docs/nothing.js`)).status).toBe(404);
  });
});
