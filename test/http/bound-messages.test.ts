/**
 * Out-of-bounds numbers over real HTTP: the 422 names the bound the route really has. `timeout_ms` on execute must
 * be > 0, so 0 is told "greater than 0" (pydantic's `greater_than`), not "greater than or equal to 0", which the 0
 * sent satisfies; inclusive bounds keep pydantic's `greater_than_equal` / `less_than_equal`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';

let server: Awaited<ReturnType<typeof startTestServer>>;
let base: string;

beforeAll(async () => {
  server = await startTestServer();
  base = `http://127.0.0.1:${server.port}`;
});
afterAll(() => server.close());

async function call(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { 'x-api-key': TEST_KEY, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: await r.json() };
}

describe('bounds in 422 answers', () => {
  it('tells execute that timeout_ms must be greater than 0 when it is 0 or below', async () => {
    for (const timeout_ms of [0, -5]) {
      const r = await call('POST', '/sessions/any-session/execute', {
        mode: 'query',
        code: 'true',
        timeout_ms,
      });
      expect(r).toEqual({
        status: 422,
        json: {
          detail: [
            {
              type: 'greater_than',
              loc: ['body', 'timeout_ms'],
              msg: 'Input should be greater than 0',
              input: timeout_ms,
              ctx: { gt: 0 },
            },
          ],
        },
      });
    }
  });

  it('keeps the inclusive wording for inclusive bounds', async () => {
    const r = await call('GET', '/sessions?limit=0');
    expect(r.status).toBe(422);
    expect(r.json).toEqual({
      detail: [
        {
          type: 'greater_than_equal',
          loc: ['query', 'limit'],
          msg: 'Input should be greater than or equal to 1',
          input: '0',
          ctx: { ge: 1 },
        },
      ],
    });
  });
});
