/**
 * JSON request bodies nested too deep or holding too many objects and arrays get a 422 before any route parses them
 * (real HTTP, a real server on SQLite): a deep body used to overflow the stack when the store serialized it, a 500.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, StoreKit, type Client, type TestServer } from './helpers.js';

const deep = (n: number): string => `{"a":${'['.repeat(n)}${']'.repeat(n)}}`;

describe('JSON body shape limits over real HTTP', () => {
  const kit = new StoreKit('sqlite');
  let server: TestServer;
  let api: Client;
  beforeAll(async () => {
    await kit.setup();
    server = await kit.start({ maxContainers: 1_000 });
    api = client(server);
  });
  afterAll(async () => {
    await kit.closeAll();
    await kit.teardown();
  });

  it('answers 422 json_invalid to a body nested deeper than --max-depth, on every JSON route, and goes on', async () => {
    const made = await api.post('/sessions', { agent_id: 'a1', session_type: 'chat' });
    expect(made.status).toBe(201);
    const id = (made.json as { id: string }).id;
    const tooDeep = deep(1_000_000); // 2 MB, under the body limit
    for (const [method, path] of [
      ['POST', '/sessions'],
      ['PUT', `/sessions/${id}/context`],
      ['PATCH', `/sessions/${id}`],
      ['POST', '/api/dispatch'],
      ['POST', `/sessions/${id}/execute`],
    ] as const) {
      const r = await (method === 'PUT' ? api.put : method === 'PATCH' ? api.patch : api.post)(path, tooDeep);
      expect(r.status, `${method} ${path}: ${r.text}`).toBe(422);
      expect(r.json).toEqual({
        detail: [
          {
            type: 'json_invalid',
            loc: ['body'],
            msg: 'JSON decode error: nested deeper than 128 levels',
            input: null,
          },
        ],
      });
    }
    // At the limit it is a body like any other.
    const ok = await api.put(`/sessions/${id}/context`, `{"a":${'['.repeat(126)}${']'.repeat(126)}}`);
    expect(ok.status, ok.text).toBe(200);
    expect((await api.get(`/sessions/${id}`)).status).toBe(200);
  });

  it('answers 422 to a body of more objects and arrays than --max-containers', async () => {
    const wide = JSON.stringify({
      agent_id: 'a1',
      session_type: 'chat',
      context: { x: Array.from({ length: 1_000 }, () => []) },
    });
    const r = await api.post('/sessions', wide);
    expect(r.status).toBe(422);
    expect(r.json).toMatchObject({
      detail: [{ type: 'json_invalid', msg: 'JSON decode error: more than 1000 objects and arrays' }],
    });
  });
});
