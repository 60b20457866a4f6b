/**
 * Strings no store keeps as given (U+0000, which PostgreSQL refuses; an unpaired UTF-16 surrogate, which becomes
 * U+FFFD on the way to UTF-8) are refused with 422 at the HTTP edge, on every store, over real HTTP: they used to
 * be a 500 on PostgreSQL, and a 201 whose value read back changed on every store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStorableText, unstorableJsonPath } from '../../src/lib/storable-text.js';
import { client, STORE_KINDS, StoreKit, type Client, type TestServer } from './helpers.js';

const refusal = (loc: (string | number)[]) => ({
  detail: [
    {
      type: 'string_invalid',
      loc,
      msg: 'String should not contain U+0000 or an unpaired UTF-16 surrogate',
      input: null,
    },
  ],
});

describe('storable text', () => {
  it('tells NUL and unpaired surrogates from well-formed text, and finds them in JSON', () => {
    for (const ok of ['', 'plain', 'é 中 😀', '\ud83d\ude00']) expect(isStorableText(ok), ok).toBe(true);
    for (const bad of ['a\u0000b', 'a\ud800', '\ud800x', 'x\udfff', '\ude00\ud83d'])
      expect(isStorableText(bad), JSON.stringify(bad)).toBe(false);
    expect(unstorableJsonPath({ a: [1, { b: 'ok' }, { c: 'x\u0000' }] })).toEqual(['a', 2, 'c']);
    expect(unstorableJsonPath({ ['k\ud800']: 1 })).toEqual(['k\ud800']);
    expect(unstorableJsonPath({ a: ['fine', null, 2, true] })).toBeNull();
  });
});

describe.each(STORE_KINDS)('on the %s store, over real HTTP', (kind) => {
  const kit = new StoreKit(kind);
  let server: TestServer;
  let api: Client;
  beforeAll(async () => {
    await kit.setup();
    server = await kit.start();
    api = client(server);
  });
  afterAll(async () => {
    await kit.teardown();
  });

  it('refuses U+0000 and unpaired surrogates in path, query, cursor and body with 422 naming where', async () => {
    const made = await api.post('/sessions', { agent_id: 'a1', session_type: 'chat' });
    expect(made.status, made.text).toBe(201);
    const id = (made.json as { id: string }).id;

    for (const path of ['/sessions/%00', '/sessions/%00/events', '/sessions/%00/metrics']) {
      const r = await api.get(path);
      expect(r.status, `${path}: ${r.text}`).toBe(422);
      expect(r.json).toEqual(refusal(['path', 'id']));
    }
    expect((await api.delete('/sessions/%00')).json).toEqual(refusal(['path', 'id']));
    expect((await api.get('/sessions/%ED%A0%80')).status).toBe(404); // raw bytes decode to U+FFFD: just unknown
    for (const q of ['agent_id=%00', 'session_type=a%00']) {
      const r = await api.get(`/sessions?${q}`);
      expect(r.status, `${q}: ${r.text}`).toBe(422);
      expect(r.json).toEqual(refusal(['query', q.split('=')[0]!]));
    }
    const badCursor = Buffer.from(JSON.stringify(['\u0000', 'x'])).toString('base64url');
    const cursor = await api.get(`/sessions?cursor=${badCursor}`);
    expect(cursor.status, cursor.text).toBe(422);
    expect(cursor.json.detail[0]).toMatchObject({ loc: ['query', 'cursor'], msg: 'Invalid cursor' });

    const bodies: [string, string, (string | number)[]][] = [
      ['POST', '{"agent_id":"a\\u0000b","session_type":"chat"}', ['body', 'agent_id']],
      ['POST', '{"agent_id":"a\\ud800","session_type":"chat"}', ['body', 'agent_id']],
      [
        'POST',
        '{"agent_id":"a","session_type":"chat","context":{"k":["ok","\\udfff"]}}',
        ['body', 'context', 'k', '1'],
      ],
      ['PUT', '{"\\u0000":1}', ['body', '\u0000']],
      ['PATCH', '{"context":{"k":"\\ud83d"}}', ['body', 'context', 'k']],
    ];
    for (const [method, body, loc] of bodies) {
      const path =
        method === 'POST' ? '/sessions' : method === 'PUT' ? `/sessions/${id}/context` : `/sessions/${id}`;
      const r = await (method === 'POST' ? api.post : method === 'PUT' ? api.put : api.patch)(path, body);
      expect(r.status, `${method} ${body}: ${r.text}`).toBe(422);
      expect(r.json).toEqual(refusal(loc));
    }
    // An escaped backslash before "u0000" is text, not U+0000; a whole surrogate pair is one character.
    const fine = await api.post(
      '/sessions',
      '{"agent_id":"a\\\\u0000","session_type":"chat","context":{"smile":"\\ud83d\\ude00"}}',
    );
    expect(fine.status, fine.text).toBe(201);
    const back = await api.get(`/sessions/${(fine.json as { id: string }).id}`);
    expect(back.json).toMatchObject({ agent_id: 'a\\u0000', context: { smile: '😀' } });
    // Nothing refused was stored.
    const all = await api.get('/sessions?limit=100');
    expect((all.json as { id: string }[]).map((r) => r.id).sort()).toEqual(
      [id, (fine.json as { id: string }).id].sort(),
    );
  });
});
