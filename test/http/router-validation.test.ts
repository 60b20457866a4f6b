/** The router's matching (literal over parameter, trailing slash, Bearer) and the FastAPI-shaped validation helpers. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Router, type Route } from '../../src/http/router.js';
import { jsonObject, parseBody, parseIsoTime, QueryErrors } from '../../src/http/validation.js';
import type { HttpRequest } from '../../src/transport/http.js';

const LIMITS = {
  maxUrlBytes: 8192,
  maxHeaderCount: 40,
  maxHeaderBytes: 16384,
  maxDepth: 128,
  maxContainers: 100_000,
};
const route = (method: Route['method'], path: string): Route => ({
  method,
  path,
  doc: { summary: 'test route', tag: 'test', responses: {} },
  handle: ({ params }) => ({ status: 200, body: { route: `${method} ${path}`, params } }),
});
const req = (
  method: string,
  path: string,
  headers: Record<string, string> = { 'x-api-key': 'k' },
): HttpRequest => ({
  method,
  path,
  query: '',
  headers,
  body: new Uint8Array(0),
});

describe('Router matching', () => {
  // parameters registered first: literal segments must still win
  const router = new Router('k', LIMITS).register([
    route('GET', '/sessions/:id'),
    route('DELETE', '/sessions/:id'),
    route('GET', '/sessions/:id/events'),
    route('GET', '/sessions'),
    route('GET', '/sessions/metrics'),
    route('GET', '/sessions/events'),
    route('GET', '/sessions/:id/metrics'),
  ]);
  const hit = async (method: string, path: string, headers?: Record<string, string>) => {
    const r = await router.handle(req(method, path, headers));
    return r.status === 200 ? (r.body as { route: string; params: Record<string, string> }) : r.status;
  };

  it('prefers literal segments over parameters, whatever the registration order', async () => {
    expect(await hit('GET', '/sessions/metrics')).toMatchObject({ route: 'GET /sessions/metrics' });
    expect(await hit('GET', '/sessions/events')).toMatchObject({ route: 'GET /sessions/events' });
    expect(await hit('GET', '/sessions/abc')).toEqual({ route: 'GET /sessions/:id', params: { id: 'abc' } });
    expect(await hit('GET', '/sessions/metrics/events')).toEqual({
      route: 'GET /sessions/:id/events',
      params: { id: 'metrics' },
    });
    expect(await hit('GET', '/sessions/events/metrics')).toMatchObject({
      route: 'GET /sessions/:id/metrics',
    });
    // a literal of another method does not shadow the parameter route of this one
    expect(await hit('DELETE', '/sessions/metrics')).toEqual({
      route: 'DELETE /sessions/:id',
      params: { id: 'metrics' },
    });
    expect(await hit('POST', '/sessions/metrics')).toBe(405);
  });

  it('answers every route with one trailing slash, and decodes parameters', async () => {
    expect(await hit('GET', '/sessions/')).toMatchObject({ route: 'GET /sessions' });
    expect(await hit('GET', '/sessions/a%2Fb/')).toEqual({
      route: 'GET /sessions/:id',
      params: { id: 'a/b' },
    });
    expect(await hit('GET', '/sessions/metrics/')).toMatchObject({ route: 'GET /sessions/metrics' });
    expect(await hit('GET', '/sessions//')).toBe(404);
    expect(await hit('GET', '/sessions/x/events/')).toMatchObject({ route: 'GET /sessions/:id/events' });
  });

  it('takes the key from X-API-Key or Authorization: Bearer', async () => {
    expect(await hit('GET', '/sessions', { authorization: 'Bearer k' })).toMatchObject({
      route: 'GET /sessions',
    });
    expect(await hit('GET', '/sessions', { authorization: 'bearer   k ' })).toMatchObject({
      route: 'GET /sessions',
    });
    expect(await hit('GET', '/sessions', { authorization: 'Bearer nope' })).toBe(401);
    expect(await hit('GET', '/sessions', { authorization: 'Basic k' })).toBe(422);
    expect(await hit('GET', '/sessions', {})).toBe(422);
  });
});

describe('validation helpers', () => {
  it('reads ISO-8601 times as the stores write them, rounding finer than a millisecond towards the bound', () => {
    expect(parseIsoTime('2025-03-04T05:06:07.123Z', 'after')).toBe('2025-03-04T05:06:07.123Z');
    expect(parseIsoTime('2025-03-04', 'after')).toBe('2025-03-04T00:00:00.000Z');
    expect(parseIsoTime('2025-03-04T05:06', 'after')).toBe('2025-03-04T05:06:00.000Z');
    expect(parseIsoTime('2025-03-04T05:06:07+02:00', 'after')).toBe('2025-03-04T03:06:07.000Z');
    expect(parseIsoTime('2025-03-04T05:06:07 02:00', 'after')).toBe('2025-03-04T03:06:07.000Z');
    expect(parseIsoTime('2025-03-04 05:06:07.5-0130', 'after')).toBe('2025-03-04T06:36:07.500Z');
    expect(parseIsoTime('2025-03-04T05:06:07.123456Z', 'after')).toBe('2025-03-04T05:06:07.123Z');
    expect(parseIsoTime('2025-03-04T05:06:07.123456Z', 'before')).toBe('2025-03-04T05:06:07.124Z');
    expect(parseIsoTime('2025-03-04T05:06:07.123000Z', 'before')).toBe('2025-03-04T05:06:07.123Z');
    expect(parseIsoTime('0099-01-01', 'after')).toBe('0099-01-01T00:00:00.000Z');
    expect(parseIsoTime('1700000000', 'after')).toBe('2023-11-14T22:13:20.000Z');
    expect(parseIsoTime('1700000000123', 'after')).toBe('2023-11-14T22:13:20.123Z');
    for (const bad of [
      '',
      'yesterday',
      '2025-13-01',
      '2025-02-29',
      '2025-01-01T24:00',
      '2025-01-01T10:00+25:00',
      '25-01-01',
    ])
      expect(parseIsoTime(bad, 'after'), bad).toBeNull();
    expect(parseIsoTime('2024-02-29', 'after')).toBe('2024-02-29T00:00:00.000Z');
  });

  it('maps zod issues to FastAPI entries; JSON objects keep every key', () => {
    const schema = z.object({
      a: z.string(),
      o: jsonObject.optional(),
      n: z.number().int().min(1).optional(),
    });
    const enc = (v: string) => new TextEncoder().encode(v);
    const ok = parseBody(schema, enc('{"a":"x","o":{"__proto__":{"p":1},"k":2},"extra":1}'));
    expect(ok.ok).toBe(true);
    if (ok.ok) {
      expect(Object.keys(ok.value.o!)).toEqual(['__proto__', 'k']);
      expect(ok.value).not.toHaveProperty('extra');
    }
    const bad = parseBody(schema, enc('{"o":5,"n":0}'));
    expect(bad.ok).toBe(false);
    if (!bad.ok)
      expect((bad.res.body as { detail: unknown[] }).detail).toEqual([
        { type: 'missing', loc: ['body', 'a'], msg: 'Field required', input: { o: 5, n: 0 } },
        { type: 'dict_type', loc: ['body', 'o'], msg: 'Input should be a valid dictionary', input: 5 },
        {
          type: 'greater_than_equal',
          loc: ['body', 'n'],
          msg: 'Input should be greater than or equal to 1',
          input: 0,
          ctx: { ge: 1 },
        },
      ]);
    const jsonError = (text: string) => {
      const r = parseBody(schema, enc(text));
      if (r.ok) throw new Error('parsed junk');
      expect(r.res.status).toBe(422);
      return (r.res.body as { detail: unknown[] }).detail[0];
    };
    expect(jsonError('{"a" 1}')).toMatchObject({
      type: 'json_invalid',
      loc: ['body', 5],
      msg: 'JSON decode error',
    });
    expect(jsonError('{"a": tru')).toMatchObject({ type: 'json_invalid', loc: ['body', 9], input: {} });
    const utf = parseBody(schema, new Uint8Array([0x7b, 0xff, 0x7d]));
    expect(utf.ok).toBe(false);
  });

  it('collects query errors', () => {
    const q = new URLSearchParams('limit=5&status=active&status=x');
    const e = new QueryErrors();
    expect(e.int(q, 'limit', 50, 1, 10)).toBe(5);
    expect(e.int(q, 'missing', 50, 1, 10)).toBe(50);
    expect(e.enumList(q, 'status', ['active', 'paused'] as const)).toEqual(['active']);
    expect(e.errors).toEqual([
      {
        type: 'enum',
        loc: ['query', 'status', 1],
        msg: "Input should be 'active' or 'paused'",
        input: 'x',
        ctx: { expected: "'active' or 'paused'" },
      },
    ]);
    expect(e.response()?.status).toBe(422);
  });
});
