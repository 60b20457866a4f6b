/**
 * AIP tasks are sessions of the same model: a task run over a real WebSocket shows up in /sessions (type `task`,
 * agent = executing device, active then completed, with its task fields, events and metrics), and DELETE of a
 * running one cancels it first (the requester gets task_end failed with the reason), alone or in a bulk delete.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../protocol/index.js';
import { constellationTask } from '../helpers/aip-server.js';
import { RawClient } from '../helpers/raw-client.js';
import { client, eventually, STORE_KINDS, StoreKit, type Client, type TestServer } from './helpers.js';

describe.each(STORE_KINDS)('AIP tasks as sessions (%s store)', (kind) => {
  const kit = new StoreKit(kind);
  let server: TestServer;
  let api: Client;
  const sockets: RawClient[] = [];
  beforeAll(() => kit.setup());
  afterAll(() => kit.teardown());
  afterEach(async () => {
    await Promise.all(sockets.splice(0).map((s) => s.close()));
    await kit.closeAll();
  });
  const connect = async (id: string, extra: Record<string, unknown>) => {
    const c = await RawClient.connect(server.url);
    sockets.push(c);
    await c.register(id, extra);
    return c;
  };
  const setup = async (config: Parameters<StoreKit['start']>[0] = {}) => {
    server = await kit.start({ commandTimeoutMs: 5_000, ...config });
    api = client(server);
    const device = await connect('dev-1', {
      metadata: { platform: 'linux', system_info: { device_id: 'dev-1' } },
    });
    const requester = await connect('k@dev-1', { client_type: 'constellation', target_id: 'dev-1' });
    return { device, requester };
  };
  const runTask = (requester: RawClient, sessionId: string, steps: number) =>
    requester.send(
      constellationTask('k@dev-1', 'dev-1', steps, { task_name: 'demo/task', session_id: sessionId }),
    );
  const answer = (device: RawClient, cmd: ServerMessage, status: 'success' | 'failure') =>
    device.answer(cmd, status);

  it('a running task is an active `task` session of its device, then completed with its result, events and metrics', async () => {
    const { device, requester } = await setup();
    runTask(requester, 'k@t1', 3);
    const first = await device.next((m) => m.type === 'command');
    const path = `/sessions/${encodeURIComponent('k@t1')}`;
    const live = await eventually(async () => {
      const r = await api.get(path);
      return r.status === 200 && r.json.task?.state === 'running' ? r.json : undefined;
    });
    expect(live).toMatchObject({
      id: 'k@t1',
      agent_id: 'dev-1',
      session_type: 'task',
      status: 'active',
      runtime_backend: 'local',
      task: {
        task_name: 'demo_task',
        requester: 'k@dev-1',
        executor: 'dev-1',
        platform: 'linux',
        result: null,
        error: null,
      },
    });
    expect(live.runtime_metadata).toMatchObject({ platform: 'linux' });
    expect(live).not.toHaveProperty('managed_by');
    const listed = await api.get('/sessions?session_type=task&status=active&agent_id=dev-1');
    expect(listed.json.map((s: { id: string }) => s.id)).toEqual(['k@t1']);

    device.autoAnswer();
    answer(device, first, 'success');
    const end = await requester.next((m) => m.type === 'task_end');
    expect(end.status).toBe('completed');
    const done = (await api.get(path)).json;
    expect(done.status).toBe('completed');
    expect(done.status_history.map((h: { status: string }) => h.status)).toEqual(['active', 'completed']);
    expect(done.task.result).toEqual(end.result);
    expect(done.checkpoint).toMatchObject({ aip_steps: 3 });
    expect((await api.get('/sessions?status=completed&session_type=task')).json).toHaveLength(1);

    const types = (await api.get(`${path}/events?limit=1000`)).json.map((e: { type: string }) => e.type);
    expect(types[0]).toBe('session.created');
    expect(types).toContain('task.started');
    expect(types.filter((t: string) => t === 'task.commands')).toHaveLength(3);
    expect(types.filter((t: string) => t === 'task.results')).toHaveLength(3);
    expect(types[types.length - 1]).toBe('task.ended');
    const m = (await api.get(`${path}/metrics`)).json;
    expect(m).toMatchObject({ status: 'completed', commands: 3, command_batches: 3, results: 3, errors: 0 });
    expect(m.ended_at).not.toBeNull();
  });

  it('a result over --plan-result-max-bytes lists later steps as omitted; the events keep their results whole', async () => {
    const { device, requester } = await setup({ planResultMaxBytes: 2500 });
    // Each result is 1,000 characters, starting with the response id it answers.
    device.autoAnswer((_, m) => `${m.response_id}:`.padEnd(1000, '.'));
    runTask(requester, 'k@big', 5);
    const end = await requester.next((m) => m.type === 'task_end');
    expect(end.status).toBe('completed');
    type Step = {
      step: number;
      results: { result: string }[];
      results_omitted?: { count: number; bytes: number };
    };
    const result = end.result as { steps_completed: number; steps: Step[] };
    expect(result.steps_completed).toBe(5);
    const commands = device.ofType('command');
    expect(result.steps.slice(0, 2).map((x) => x.results[0]!.result.slice(0, 36))).toEqual(
      commands.slice(0, 2).map((c) => c.response_id),
    );
    for (const x of result.steps.slice(2)) {
      expect(x).toMatchObject({ results: [], results_omitted: { count: 1 } });
      expect(x.results_omitted!.bytes).toBeGreaterThan(1000);
    }
    const path = `/sessions/${encodeURIComponent('k@big')}`;
    expect((await api.get(path)).json.task.result).toEqual(end.result);
    const recorded = (await api.get(`${path}/events?limit=1000`)).json.filter(
      (e: { type: string }) => e.type === 'task.results',
    ) as { data: { step: number; results: { result: string }[] } }[];
    expect(recorded.map((e) => e.data.step)).toEqual([0, 1, 2, 3, 4]);
    expect(recorded.map((e) => e.data.results[0]!.result)).toEqual(
      commands.map((c) => `${c.response_id}:`.padEnd(1000, '.')),
    );
  });

  it("a failed step's PLAN_STEP_FAILED quotes the device's error text up to --plan-error-max-bytes", async () => {
    const { device, requester } = await setup({ planErrorMaxBytes: 256 });
    runTask(requester, 'k@err', 2);
    const text = 'E'.repeat(200_000);
    device.answer(await device.next((m) => m.type === 'command'), 'failure', text);
    const end = await requester.next((m) => m.type === 'task_end');
    expect(end.status).toBe('failed');
    const error = end.error as string;
    // The quote: as many characters as fit in 256 bytes with the note, then how many bytes were left out.
    const quote = /: (E+)… \[truncated: (\d+) of 200000 bytes left out\]$/.exec(error)!;
    expect(quote).not.toBeNull();
    expect(quote[1]!.length + Number(quote[2])).toBe(200_000);
    expect(Buffer.byteLength(quote[0]) - 2).toBeLessThanOrEqual(256);
    expect(quote[1]!.length).toBeGreaterThan(150);
    const path = `/sessions/${encodeURIComponent('k@err')}`;
    expect((await api.get(path)).json.task.error).toBe(error);
    // The device's answer itself is kept whole in the step's event.
    const recorded = (await api.get(`${path}/events?limit=100`)).json.filter(
      (e: { type: string }) => e.type === 'task.results',
    ) as { data: { results: { error: string }[] } }[];
    expect(recorded).toHaveLength(1);
    expect(recorded[0]!.data.results[0]!.error.length).toBeGreaterThan(1000);
  });

  it('counts failed results as errors in the metrics', async () => {
    const { device, requester } = await setup();
    runTask(requester, 'k@t2', 2);
    answer(device, await device.next((m) => m.type === 'command'), 'failure');
    const end = await requester.next((m) => m.type === 'task_end');
    expect(end.status).toBe('failed');
    const m = (await api.get(`/sessions/${encodeURIComponent('k@t2')}/metrics`)).json;
    expect(m).toMatchObject({ status: 'failed', commands: 1, results: 1, errors: 1 });
  });

  it('DELETE of a running task cancels it first: task_end failed with the reason, then 204 and gone', async () => {
    const { device, requester } = await setup();
    runTask(requester, 'k@t3', 3);
    await device.next((m) => m.type === 'command');
    const r = await api.delete(`/sessions/${encodeURIComponent('k@t3')}`);
    expect(r.status).toBe(204);
    // the DELETE answered once the task had ended: its task_end is already in
    const end = await requester.next((m) => m.type === 'task_end', 5000, 0);
    expect(end).toMatchObject({
      status: 'failed',
      session_id: 'k@t3',
      error: 'Session deleted over the REST API',
    });
    expect((await api.get(`/sessions/${encodeURIComponent('k@t3')}`)).status).toBe(404);
    expect(server.tasks.live.size).toBe(0);
    const log = (await api.get(`/sessions/${encodeURIComponent('k@t3')}/events?limit=1000`)).json;
    expect(log[log.length - 1].type).toBe('session.deleted');
  });

  it('PATCH status cancelled of a running task cancels it: task_end failed with the reason, record cancelled', async () => {
    const { device, requester } = await setup();
    runTask(requester, 'k@t5', 3);
    await device.next((m) => m.type === 'command');
    const path = `/sessions/${encodeURIComponent('k@t5')}`;
    const r = await api.patch(path, { status: 'cancelled', reason: 'operator stop', context: { by: 'ops' } });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ status: 'cancelled', context: { by: 'ops' } });
    const end = await requester.next((m) => m.type === 'task_end', 5000, 0);
    expect(end).toMatchObject({ status: 'failed', session_id: 'k@t5', error: 'operator stop' });
    expect(server.tasks.live.size).toBe(0);
    const rec = (await api.get(path)).json;
    expect(rec).toMatchObject({ status: 'cancelled', task: { state: 'cancelled', error: 'operator stop' } });
  });

  it('PATCH of a running task to any other status is refused (409) and the task runs on to its task_end', async () => {
    const { device, requester } = await setup();
    runTask(requester, 'k@t6', 1);
    const cmd = await device.next((m) => m.type === 'command');
    const path = `/sessions/${encodeURIComponent('k@t6')}`;
    for (const status of ['crashed', 'completed', 'failed', 'paused']) {
      const r = await api.patch(path, { status });
      expect(r.status).toBe(409);
      expect(r.json.detail).toBe(
        `Session 'k@t6' is running: its status is the server's, and a PATCH may only end it ('cancelled'), not set it to '${status}'`,
      );
    }
    expect((await api.get(path)).json.status).toBe('active');
    answer(device, cmd, 'success');
    const end = await requester.next((m) => m.type === 'task_end', 5000, 0);
    expect(end).toMatchObject({ status: 'completed', session_id: 'k@t6' });
    const done = await eventually(async () => {
      const rec = (await api.get(path)).json;
      return rec.task?.state === 'completed' ? rec : undefined;
    });
    expect(done).toMatchObject({ status: 'completed', task: { state: 'completed', error: null } });
  });

  it('a bulk delete cancels the running tasks among the sessions it deletes', async () => {
    const { device, requester } = await setup();
    await api.post('/sessions', { id: 'rest-1', agent_id: 'dev-1', session_type: 'conversation' });
    runTask(requester, 'k@t4', 3);
    await device.next((m) => m.type === 'command');
    const r = await api.delete('/sessions?agent_id=dev-1&status=active');
    expect(r.json).toEqual({ deleted: 2 });
    const end = await requester.next((m) => m.type === 'task_end', 5000, 0);
    expect(end).toMatchObject({ status: 'failed', error: 'Session deleted over the REST API' });
    expect((await api.get('/sessions')).json).toEqual([]);
  });
});
