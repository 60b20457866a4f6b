/**
 * The OpenAPI document lists the statuses the routes really answer: error cases of the remote-session routes (files,
 * execute, services) and of /api/task_result are driven over real HTTP against a real `aipd device`, and each
 * status answered must be among the responses /openapi.json states for that route. A route that starts answering a
 * status its `doc` does not list fails here.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_KEY } from '../helpers/aip-server.js';
import { startDeviceServer, type Api, type DeviceServer } from '../remote/helpers.js';

let ds: DeviceServer;
let base: string;
let a: Api;
/** An `interactive` session on the device, and a plain record that is not a remote session. */
let live: string;
let plain: string;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document is read field by field
let doc: any;

beforeAll(async () => {
  ds = await startDeviceServer('statuses-dev', ['--allow-exec']);
  ({ base, api: a } = ds);
  await mkdir(path.join(ds.root, 'a-dir'));
  await writeFile(path.join(ds.root, 'a-file'), '0123456789');
  live = await ds.interactive();
  const p = await a.call('POST', '/sessions', { agent_id: 'statuses-dev', session_type: 'notes' });
  expect(p.status, p.text).toBe(201);
  plain = p.json.id as string;
  doc = (await a.call('GET', '/openapi.json')).json;
}, 60_000);

afterAll(() => ds?.stop());

interface Case {
  /** The route as /openapi.json names it, e.g. `GET /sessions/{id}/files`. */
  readonly route: string;
  /** What is sent, and the status it must get. */
  readonly send: () => Promise<number>;
  readonly status: number;
  readonly what: string;
}

const get = (p: string, headers?: Record<string, string>) => async () =>
  (await a.call('GET', p, undefined, headers)).status;
const post = (p: string, body?: unknown) => async () => (await a.call('POST', p, body)).status;
const del = (p: string) => async () => (await a.call('DELETE', p)).status;
const upload = (id: string, query: string, name: string) => async () => {
  const form = new FormData();
  form.append('f', new Blob(['x']), name);
  const r = await fetch(`${base}/sessions/${id}/upload${query}`, {
    method: 'POST',
    headers: { 'x-api-key': TEST_KEY },
    body: form,
  });
  await r.arrayBuffer();
  return r.status;
};
const query = (code: string, extra: Record<string, unknown> = {}) => ({ mode: 'query', code, ...extra });

function cases(): Case[] {
  const files = (id: string, q: string) => get(`/sessions/${id}/files${q}`);
  const single = (id: string, q: string, h?: Record<string, string>) =>
    get(`/sessions/${id}/download_single${q}`, h);
  const tar = (id: string, q: string) => get(`/sessions/${id}/download${q}`);
  const exec = (id: string, body: unknown) => post(`/sessions/${id}/execute`, body);
  return [
    {
      route: 'POST /sessions/{id}/upload',
      what: 'a path escape',
      status: 403,
      send: upload(live, '', '../x'),
    },
    {
      route: 'POST /sessions/{id}/upload',
      what: 'onto a folder',
      status: 400,
      send: upload(live, '', 'a-dir'),
    },
    {
      route: 'POST /sessions/{id}/upload',
      what: 'under a file',
      status: 400,
      send: upload(live, '?path=a-file', 'x'),
    },
    {
      route: 'POST /sessions/{id}/upload',
      what: 'a plain record',
      status: 409,
      send: upload(plain, '', 'x'),
    },
    { route: 'GET /sessions/{id}/files', what: 'a path escape', status: 403, send: files(live, '?path=..') },
    { route: 'GET /sessions/{id}/files', what: 'a file', status: 400, send: files(live, '?path=a-file') },
    {
      route: 'GET /sessions/{id}/files',
      what: 'a missing folder',
      status: 404,
      send: files(live, '?path=nope'),
    },
    { route: 'GET /sessions/{id}/files', what: 'a plain record', status: 409, send: files(plain, '') },
    {
      route: 'GET /sessions/{id}/download_single',
      what: 'an escape',
      status: 403,
      send: single(live, '?file=../x'),
    },
    {
      route: 'GET /sessions/{id}/download_single',
      what: 'a folder',
      status: 400,
      send: single(live, '?file=a-dir'),
    },
    {
      route: 'GET /sessions/{id}/download_single',
      what: 'a missing file',
      status: 404,
      send: single(live, '?file=no'),
    },
    { route: 'GET /sessions/{id}/download_single', what: 'no file', status: 422, send: single(live, '') },
    {
      route: 'GET /sessions/{id}/download_single',
      what: 'a plain record',
      status: 409,
      send: single(plain, '?file=x'),
    },
    {
      route: 'GET /sessions/{id}/download_single',
      what: 'a range past the end',
      status: 416,
      send: single(live, '?file=a-file', { range: 'bytes=50-60' }),
    },
    {
      route: 'GET /sessions/{id}/download',
      what: 'a path escape',
      status: 403,
      send: tar(live, '?files=../x'),
    },
    { route: 'GET /sessions/{id}/download', what: 'a folder', status: 400, send: tar(live, '?files=a-dir') },
    {
      route: 'GET /sessions/{id}/download',
      what: 'a missing file',
      status: 404,
      send: tar(live, '?files=nope'),
    },
    {
      route: 'GET /sessions/{id}/download',
      what: 'a plain record',
      status: 409,
      send: tar(plain, '?files=x'),
    },
    {
      route: 'POST /sessions/{id}/execute',
      what: 'cwd out of the root',
      status: 403,
      send: exec(live, query('pwd', { cwd: '/' })),
    },
    {
      route: 'POST /sessions/{id}/execute',
      what: 'cwd a file',
      status: 400,
      send: exec(live, query('pwd', { cwd: 'a-file' })),
    },
    {
      route: 'POST /sessions/{id}/execute',
      what: 'cwd missing',
      status: 404,
      send: exec(live, query('pwd', { cwd: 'nope' })),
    },
    {
      route: 'POST /sessions/{id}/execute',
      what: 'timeout_ms 0',
      status: 422,
      send: exec(live, query('pwd', { timeout_ms: 0 })),
    },
    {
      route: 'POST /sessions/{id}/execute',
      what: 'a plain record',
      status: 409,
      send: exec(plain, query('pwd')),
    },
    {
      route: 'POST /sessions/{id}/execute',
      what: 'no session',
      status: 404,
      send: exec('no-such-session', query('pwd')),
    },
    {
      route: 'POST /sessions/{id}/interrupt',
      what: 'a plain record',
      status: 409,
      send: post(`/sessions/${plain}/interrupt`),
    },
    {
      route: 'POST /sessions/{id}/token',
      what: 'no stream',
      status: 409,
      send: post(`/sessions/${live}/token`),
    },
    {
      route: 'GET /sessions/{id}/services',
      what: 'a plain record',
      status: 409,
      send: get(`/sessions/${plain}/services`),
    },
    {
      route: 'DELETE /sessions/{id}/services/{port}',
      what: 'no listener',
      status: 404,
      send: del(`/sessions/${live}/services/80`),
    },
    {
      route: 'DELETE /sessions/{id}/services/{port}',
      what: 'a plain record',
      status: 409,
      send: del(`/sessions/${plain}/services/80`),
    },
    {
      route: 'GET /api/task_result/{name}',
      what: 'an unsafe name',
      status: 400,
      send: get('/api/task_result/%2e%2e%2fescape'),
    },
    {
      route: 'GET /api/task_result/{name}',
      what: 'a long name',
      status: 400,
      send: get(`/api/task_result/${'a'.repeat(300)}`),
    },
  ];
}

describe('statuses in /openapi.json', () => {
  it('lists every status the remote-session routes and /api/task_result answer to bad requests', async () => {
    const missing: string[] = [];
    for (const c of cases()) {
      const status = await c.send();
      expect(status, `${c.route}: ${c.what}`).toBe(c.status);
      const [method, route] = c.route.split(' ') as [string, string];
      const responses = doc.paths[route]?.[method.toLowerCase()]?.responses as
        Record<string, unknown> | undefined;
      expect(responses, c.route).toBeDefined();
      if (!(String(status) in responses!)) missing.push(`${c.route} answers ${status} (${c.what})`);
    }
    expect(missing).toEqual([]);
  });
});
