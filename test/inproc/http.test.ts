/** Every HTTP route (ufo-aip.md §9.6 and aipd's own), through the memory transport's `inject()`. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { INVALID_TASK_NAME_TEXT } from '../../protocol/index.js';
import { planRequest, settle, startMemoryServer, type MemoryHarness } from './harness.js';

const MISSING_KEY = {
  detail: [{ type: 'missing', loc: ['header', 'X-API-Key'], msg: 'Field required', input: null }],
};
const WRONG_KEY = { detail: 'Invalid API key' };

/** Every route the router declares, with a body where it takes one. */
const ROUTES: [method: string, url: string][] = [
  ['GET', '/api/health'],
  ['GET', '/api/clients'],
  ['POST', '/api/dispatch'],
  ['GET', '/api/task_result/x'],
  ['GET', '/api/sessions'],
  ['GET', '/api/sessions/s-1'],
  ['DELETE', '/api/sessions/s-1'],
];

describe('HTTP API in-process (ufo-aip.md §9.6)', () => {
  let h: MemoryHarness;
  const dispatch = (body: unknown) => h.api('POST', '/api/dispatch', { body });
  const status = async (method: string, url: string, opts = {}) => {
    const r = await h.api(method, url, opts);
    return { status: r.status, body: r.json };
  };
  beforeEach(async () => {
    h = await startMemoryServer({ maxHttpBodyBytes: 64 * 1024 });
  });
  afterEach(async () => {
    await h.close();
  });

  it('serves GET /healthz without a key', async () => {
    const r = await h.api('GET', '/healthz', { key: null });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ status: 'ok' });
    expect(r.text).toBe('{"status":"ok"}');
    expect(await status('GET', '/healthz', { key: 'wrong' })).toEqual({
      status: 200,
      body: { status: 'ok' },
    });
  });

  it.each(ROUTES)('requires X-API-Key on %s %s: 422 when missing, 401 when wrong', async (method, url) => {
    expect(await status(method, url, { key: null, body: {} })).toEqual({ status: 422, body: MISSING_KEY });
    expect(await status(method, url, { key: 'wrong', body: {} })).toEqual({ status: 401, body: WRONG_KEY });
  });

  it('GET /api/health and /api/clients list clients of every role, in registration order', async () => {
    expect(await status('GET', '/api/clients')).toEqual({ status: 200, body: { online_clients: [] } });
    await h.device('dev-1');
    await h.constellation('k@dev-1', 'dev-1');
    expect(await status('GET', '/api/clients')).toEqual({
      status: 200,
      body: { online_clients: ['dev-1', 'k@dev-1'] },
    });
    expect(await status('GET', '/api/health')).toEqual({
      status: 200,
      body: { status: 'healthy', online_clients: ['dev-1', 'k@dev-1'] },
    });
  });

  it('POST /api/dispatch validates in UFO order (422, 400, 404)', async () => {
    expect(await status('POST', '/api/dispatch', { body: 'not json' })).toEqual({
      status: 422,
      body: {
        detail: [{ type: 'json_invalid', loc: ['body', 'body'], msg: 'JSON decode error', input: null }],
      },
    });
    expect(await dispatch([1, 2])).toMatchObject({
      status: 422,
      json: { detail: [{ type: 'dict_type', loc: ['body', 'body'] }] },
    });
    expect(await dispatch({ request: 'x' })).toMatchObject({
      status: 422,
      json: { detail: [{ type: 'missing', loc: ['body', 'client_id'] }] },
    });
    expect(await dispatch({ client_id: 'dev-1' })).toMatchObject({
      status: 422,
      json: { detail: [{ type: 'missing', loc: ['body', 'request'] }] },
    });
    expect(await dispatch({ client_id: 7, request: 'x' })).toMatchObject({
      status: 422,
      json: {
        detail: [{ type: 'string_type', loc: ['body', 'client_id'], msg: 'Input should be a valid string' }],
      },
    });
    expect(await dispatch({ client_id: 'dev-1', request: 'x', task_name: null })).toMatchObject({
      status: 422,
      json: { detail: [{ type: 'string_type', loc: ['body', 'task_name'] }] },
    });
    expect(await status('POST', '/api/dispatch', { body: { client_id: 'dev-1', request: ' ' } })).toEqual({
      status: 400,
      body: { detail: 'Empty task content' },
    });
    expect(await status('POST', '/api/dispatch', { body: { client_id: '', request: 'x' } })).toEqual({
      status: 400,
      body: { detail: 'Empty client ID' },
    });
    for (const bad of ['../escape', '/abs/escape', '.hidden', 'a/b', 'C:\\x', ''])
      expect(
        await status('POST', '/api/dispatch', { body: { client_id: 'dev-1', request: 'x', task_name: bad } }),
      ).toEqual({
        status: 400,
        body: { detail: INVALID_TASK_NAME_TEXT },
      });
    expect(await status('POST', '/api/dispatch', { body: { client_id: 'ghost', request: 'x' } })).toEqual({
      status: 404,
      body: { detail: 'Client not online' },
    });
  });

  it('POST /api/dispatch refuses a body over the limit with 413', async () => {
    const r = await dispatch({ client_id: 'dev-1', request: 'x'.repeat(70 * 1024) });
    expect(r.status).toBe(413);
    expect(r.json).toEqual({ detail: 'Request body too large' });
  });

  it('POST /api/dispatch delivers a task frame to a device; GET /api/task_result reports it by name and dispatch id', async () => {
    const d = await h.device('dev-1');
    d.autoAnswer();
    const r = await dispatch({ client_id: 'dev-1', request: planRequest(2), task_name: 'notepad_task' });
    expect(r.status).toBe(200);
    const body = r.json as { session_id: string };
    expect(body).toEqual({
      status: 'dispatched',
      task_name: 'notepad_task',
      client_id: 'dev-1',
      session_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
    const frame = await d.next((m) => m.type === 'task', 1000, 0);
    expect(frame).toMatchObject({
      status: 'continue',
      user_request: planRequest(2),
      task_name: 'notepad_task',
      session_id: body.session_id,
    });
    expect(await status('GET', '/api/task_result/notepad_task')).toEqual({
      status: 200,
      body: { status: 'pending' },
    });
    expect(await status('GET', `/api/task_result/${body.session_id}`)).toEqual({
      status: 200,
      body: { status: 'pending' },
    });
    // The device turns it into its own task, as UFO's client does (session_id null).
    d.send({ type: 'task', status: 'continue', request: frame.user_request, task_name: frame.task_name });
    const end = await d.next((m) => m.type === 'task_end');
    const done = await status('GET', '/api/task_result/notepad_task');
    expect(done).toEqual({
      status: 200,
      body: {
        status: 'done',
        task_status: 'completed',
        error: null,
        session_id: end.session_id,
        result: expect.objectContaining({ steps_completed: 2 }),
      },
    });
    expect(await status('GET', `/api/task_result/${body.session_id}`)).toEqual(done);
  });

  it('POST /api/dispatch generates a task name when none is given, and reaches a msgpack device in binary', async () => {
    const d = await h.device('mp-dev', { codec: 'msgpack', platform: 'mobile' });
    const r = await dispatch({ client_id: 'mp-dev', request: 'Open the camera' });
    expect(r.status).toBe(200);
    const body = r.json as { task_name: string; session_id: string };
    expect(body.task_name).toMatch(/^[0-9a-f-]{36}$/);
    const frame = await d.next((m) => m.type === 'task', 1000, 0);
    expect(frame).toMatchObject({
      user_request: 'Open the camera',
      task_name: body.task_name,
      session_id: body.session_id,
    });
    expect(d.frames.every((f) => f.isBinary)).toBe(true);
  });

  it('GET /api/task_result refuses an unsafe name with 400 and answers pending for an unknown one', async () => {
    expect(await status('GET', '/api/task_result/..')).toEqual({
      status: 400,
      body: { detail: INVALID_TASK_NAME_TEXT },
    });
    expect(await status('GET', '/api/task_result/%2e%2e%2fescape')).toEqual({
      status: 400,
      body: { detail: INVALID_TASK_NAME_TEXT },
    });
    expect(await status('GET', '/api/task_result/never-ran')).toEqual({
      status: 200,
      body: { status: 'pending' },
    });
  });

  it('GET /api/sessions, GET /api/sessions/:id and DELETE /api/sessions/:id (the requester gets task_end failed)', async () => {
    const d = await h.device('dev-1');
    const k = await h.constellation('k@dev-1', 'dev-1');
    expect(await status('GET', '/api/sessions')).toEqual({ status: 200, body: { sessions: [] } });
    k.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      target_id: 'dev-1',
      request: planRequest(3),
      session_id: 'k@long',
      task_name: 'long',
    });
    await d.next((m) => m.type === 'command', 1000, 0);
    await settle();
    const list = await status('GET', '/api/sessions');
    expect(list.status).toBe(200);
    expect(list.body).toEqual({
      sessions: [
        expect.objectContaining({
          session_id: 'k@long',
          task_name: 'long',
          owner: 'k@dev-1',
          executor: 'dev-1',
          platform: 'linux',
          state: 'running',
        }),
      ],
    });
    const one = await status('GET', '/api/sessions/k%40long');
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ session_id: 'k@long', owner: 'k@dev-1', state: 'running' });
    expect((one.body as { history: { state: string }[] }).history.map((x) => x.state)).toEqual([
      'created',
      'running',
    ]);
    expect(await status('GET', '/api/sessions/nope')).toEqual({
      status: 404,
      body: { detail: 'Session not found' },
    });
    expect(await status('DELETE', '/api/sessions/k%40long')).toEqual({
      status: 200,
      body: { status: 'cancelled', session_id: 'k@long' },
    });
    const end = await k.next((m) => m.type === 'task_end', 1000, 0);
    expect(end).toMatchObject({
      status: 'failed',
      session_id: 'k@long',
      error: 'Task was cancelled by an API request',
    });
    expect((await d.next((m) => m.type === 'task_end', 1000, 0)).response_id).toBe(end.response_id);
    expect(await status('GET', '/api/sessions/k%40long')).toEqual({
      status: 404,
      body: { detail: 'Session not found' },
    });
    expect(await status('GET', '/api/sessions')).toEqual({ status: 200, body: { sessions: [] } });
    expect(await status('DELETE', '/api/sessions/k%40long')).toEqual({
      status: 404,
      body: { detail: 'Session not found' },
    });
    expect(await status('GET', '/api/task_result/long')).toMatchObject({
      status: 200,
      body: { status: 'done', task_status: 'failed', error: 'Task was cancelled by an API request' },
    });
  });

  it('answers unknown routes with 404 and wrong methods with 405, before checking the key', async () => {
    expect(await status('GET', '/nope')).toEqual({ status: 404, body: { detail: 'Not Found' } });
    expect(await status('GET', '/api/nope', { key: null })).toEqual({
      status: 404,
      body: { detail: 'Not Found' },
    });
    expect(await status('GET', '/api/sessions/a/b')).toEqual({ status: 404, body: { detail: 'Not Found' } });
    expect(await status('GET', '/api/task_result/')).toEqual({ status: 404, body: { detail: 'Not Found' } });
    expect(await status('POST', '/api/clients', { body: {} })).toEqual({
      status: 405,
      body: { detail: 'Method Not Allowed' },
    });
    expect(await status('GET', '/api/dispatch', { key: null })).toEqual({
      status: 405,
      body: { detail: 'Method Not Allowed' },
    });
    expect(await status('PUT', '/api/sessions/x')).toEqual({
      status: 405,
      body: { detail: 'Method Not Allowed' },
    });
    expect(await status('post', '/healthz')).toEqual({ status: 405, body: { detail: 'Method Not Allowed' } });
  });
});
