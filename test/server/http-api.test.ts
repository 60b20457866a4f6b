import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { INVALID_TASK_NAME_TEXT } from '../../protocol/index.js';
import { planRequest, startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { RawClient } from '../helpers/raw-client.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

describe('HTTP API (ufo-aip.md §9.6)', () => {
  let server: Server;
  let base: string;
  const clients: RawClient[] = [];
  const api = async (path: string, init: RequestInit & { key?: string | null } = {}) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (init.key !== null) headers['x-api-key'] = init.key ?? TEST_KEY;
    const res = await fetch(`${base}${path}`, { ...init, headers });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const dispatch = (body: unknown) => api('/api/dispatch', { method: 'POST', body: JSON.stringify(body) });
  beforeEach(async () => {
    server = await startTestServer();
    base = `http://127.0.0.1:${server.port}`;
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await server.close();
  });

  it('serves /healthz without a key', async () => {
    expect(await api('/healthz', { key: null })).toEqual({ status: 200, body: { status: 'ok' } });
  });

  it('requires X-API-Key on every /api route: 422 when missing, 401 when wrong', async () => {
    for (const path of ['/api/clients', '/api/health', '/api/task_result/x']) {
      const missing = await api(path, { key: null });
      expect(missing.status).toBe(422);
      expect(missing.body.detail).toEqual([
        { type: 'missing', loc: ['header', 'X-API-Key'], msg: 'Field required', input: null },
      ]);
      expect(await api(path, { key: 'wrong' })).toEqual({ status: 401, body: { detail: 'Invalid API key' } });
    }
    expect((await api('/api/dispatch', { method: 'POST', key: 'wrong', body: '{}' })).status).toBe(401);
  });

  it('lists clients of every role, and reports health', async () => {
    const d = await RawClient.connect(server.url);
    clients.push(d);
    await d.register('dev-1');
    const k = await RawClient.connect(server.url);
    clients.push(k);
    await k.register('k@dev-1', { client_type: 'constellation', target_id: 'dev-1' });
    expect(await api('/api/clients')).toEqual({
      status: 200,
      body: { online_clients: ['dev-1', 'k@dev-1'] },
    });
    expect(await api('/api/health')).toEqual({
      status: 200,
      body: { status: 'healthy', online_clients: ['dev-1', 'k@dev-1'] },
    });
  });

  it('validates /api/dispatch in UFO order', async () => {
    expect(await dispatch({ client_id: 'dev-1', request: '' })).toEqual({
      status: 400,
      body: { detail: 'Empty task content' },
    });
    expect(await dispatch({ client_id: '', request: 'x' })).toEqual({
      status: 400,
      body: { detail: 'Empty client ID' },
    });
    for (const bad of ['../escape', '/abs/escape', '.hidden', 'a/b', 'C:\\x', ''])
      expect(await dispatch({ client_id: 'dev-1', request: 'x', task_name: bad })).toEqual({
        status: 400,
        body: { detail: INVALID_TASK_NAME_TEXT },
      });
    expect((await dispatch({ client_id: 'dev-1', request: 'x', task_name: null })).status).toBe(422);
    expect((await dispatch([1, 2])).status).toBe(422);
    expect((await dispatch({ request: 'x' })).status).toBe(422);
    expect(await dispatch({ client_id: 'ghost', request: 'x' })).toEqual({
      status: 404,
      body: { detail: 'Client not online' },
    });
  });

  it('tells a task name that is too long so, on /api/dispatch and /api/task_result', async () => {
    const tooLong = { detail: 'Invalid task_name: it is 300 characters long; at most 256 are allowed' };
    const name = 'a'.repeat(300);
    expect(await dispatch({ client_id: 'dev-1', request: 'x', task_name: name })).toEqual({
      status: 400,
      body: tooLong,
    });
    expect(await api(`/api/task_result/${name}`)).toEqual({ status: 400, body: tooLong });
    // 256 characters are a valid name (the client is just not online)
    expect((await dispatch({ client_id: 'dev-1', request: 'x', task_name: 'a'.repeat(256) })).status).toBe(
      404,
    );
  });

  it('dispatches a task frame to the device and reports its result by task_name or dispatch id', async () => {
    const d = await RawClient.connect(server.url);
    clients.push(d);
    await d.register('dev-1', { metadata: { platform: 'linux' } });
    d.autoAnswer();
    const r = await dispatch({ client_id: 'dev-1', request: planRequest(2), task_name: 'notepad_task' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'dispatched', task_name: 'notepad_task', client_id: 'dev-1' });
    const task = await d.next((m) => m.type === 'task', 5000, 0);
    expect(task).toMatchObject({
      status: 'continue',
      user_request: planRequest(2),
      task_name: 'notepad_task',
      session_id: r.body.session_id,
    });
    expect(await api('/api/task_result/notepad_task')).toEqual({ status: 200, body: { status: 'pending' } });
    // The device turns it into its own task, as UFO's client does (session_id null).
    d.send({ type: 'task', status: 'continue', request: task.user_request, task_name: task.task_name });
    await d.next((m) => m.type === 'task_end');
    const done = await api('/api/task_result/notepad_task');
    expect(done.body).toMatchObject({
      status: 'done',
      task_status: 'completed',
      result: { steps_completed: 2 },
    });
    const byId = await api(`/api/task_result/${String(r.body.session_id)}`);
    expect(byId.body).toMatchObject({ status: 'done', result: { steps_completed: 2 } });
  });

  it('dispatches to a msgpack device as a binary frame', async () => {
    const d = await RawClient.connect(server.url, 'msgpack');
    clients.push(d);
    await d.register('mp-dev', { metadata: { platform: 'mobile' } });
    const r = await dispatch({ client_id: 'mp-dev', request: 'Open the camera', task_name: 'camera' });
    expect(r.status).toBe(200);
    const task = await d.next((m) => m.type === 'task', 5000, 0);
    expect(task).toMatchObject({
      user_request: 'Open the camera',
      task_name: 'camera',
      session_id: r.body.session_id,
    });
    expect(d.frames.every((f) => f.isBinary)).toBe(true);
  });

  it('lists live sessions and cancels one, ending it with task_end failed for the requester', async () => {
    const d = await RawClient.connect(server.url);
    clients.push(d);
    await d.register('dev-1', { metadata: { platform: 'linux' } });
    const k = await RawClient.connect(server.url);
    clients.push(k);
    await k.register('k@dev-1', { client_type: 'constellation', target_id: 'dev-1' });
    k.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      target_id: 'dev-1',
      request: planRequest(3),
      session_id: 'k@long',
      task_name: 'long',
    });
    await d.next((m) => m.type === 'command', 5000, 0);
    const list = await api('/api/sessions');
    expect(list.status).toBe(200);
    expect(list.body.sessions).toEqual([
      expect.objectContaining({
        session_id: 'k@long',
        task_name: 'long',
        owner: 'k@dev-1',
        executor: 'dev-1',
        platform: 'linux',
        state: 'running',
      }),
    ]);
    const one = await api('/api/sessions/k%40long');
    expect((one.body.history as { state: string }[]).map((h) => h.state)).toEqual(['created', 'running']);
    expect(await api('/api/sessions/k%40long', { method: 'DELETE', key: 'wrong' })).toMatchObject({
      status: 401,
    });
    expect(await api('/api/sessions/k%40long', { method: 'DELETE' })).toEqual({
      status: 200,
      body: { status: 'cancelled', session_id: 'k@long' },
    });
    const end = await k.next((m) => m.type === 'task_end', 5000, 0);
    expect(end).toMatchObject({
      status: 'failed',
      session_id: 'k@long',
      error: 'Task was cancelled by an API request',
    });
    expect(await api('/api/sessions/k%40long')).toEqual({
      status: 404,
      body: { detail: 'Session not found' },
    });
    expect(await api('/api/sessions/nope', { method: 'DELETE' })).toEqual({
      status: 404,
      body: { detail: 'Session not found' },
    });
    expect((await api('/api/task_result/long')).body).toMatchObject({
      status: 'done',
      task_status: 'failed',
    });
  });

  it('answers unknown routes and methods with JSON errors', async () => {
    expect(await api('/nope')).toEqual({ status: 404, body: { detail: 'Not Found' } });
    expect(await api('/api/nope')).toEqual({ status: 404, body: { detail: 'Not Found' } });
    expect(await api('/api/clients', { method: 'POST', body: '{}' })).toEqual({
      status: 405,
      body: { detail: 'Method Not Allowed' },
    });
  });
});
