import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { planRequest, startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { RawClient, type Codec } from '../helpers/raw-client.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

describe.each<Codec>(['json', 'msgpack'])('tasks and commands over %s (ufo-aip.md §6–§7)', (codec) => {
  let server: Server;
  const clients: RawClient[] = [];
  const client = async (c: Codec = codec) => {
    const rc = await RawClient.connect(server.url, c);
    clients.push(rc);
    return rc;
  };
  const device = async (id: string, platform = 'linux', c: Codec = codec) => {
    const d = await client(c);
    await d.register(id, { metadata: { platform, system_info: { device_id: id, hostname: `host-${id}` } } });
    return d;
  };
  const getJson = async (path: string): Promise<unknown> =>
    (await fetch(`http://127.0.0.1:${server.port}${path}`, { headers: { 'x-api-key': TEST_KEY } })).json();
  const constellation = async (id: string, target: string | null, c: Codec = codec) => {
    const k = await client(c);
    await k.register(id, { client_type: 'constellation', target_id: target });
    return k;
  };
  beforeEach(async () => {
    server = await startTestServer({ commandTimeoutMs: 400 });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await server.close();
  });

  it('runs a device task for itself: ACK, commands with fresh ids, matched results, task_end', async () => {
    const d = await device('dev-1');
    d.autoAnswer();
    d.send({
      type: 'task',
      status: 'continue',
      client_id: 'dev-1',
      request: planRequest(3),
      task_name: 'notepad/hello',
    });
    const ack = await d.next((m) => m.type === 'heartbeat' && m.session_id !== null);
    const end = await d.next((m) => m.type === 'task_end');
    const commands = d.ofType('command');
    expect(commands).toHaveLength(3);
    for (const c of commands) {
      expect(c).toMatchObject({
        status: 'continue',
        agent_name: 'LinuxAgent',
        session_id: ack.session_id,
        task_name: 'notepad_hello',
      });
      expect(c.actions![0]!.call_id).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(new Set(commands.map((c) => c.response_id)).size).toBe(3);
    expect(new Set(commands.map((c) => c.actions![0]!.call_id)).size).toBe(3);
    expect(end).toMatchObject({ status: 'completed', session_id: ack.session_id, error: null });
    const result = end.result as {
      steps_completed: number;
      steps: { step: number; results: { result: string; call_id: string }[] }[];
    };
    expect(result.steps_completed).toBe(3);
    expect(result.steps.map((s) => s.results[0]!.call_id)).toEqual(
      commands.map((c) => c.actions![0]!.call_id),
    );
    expect(server.tasks.live.size).toBe(0);
  });

  it('runs a constellation task: ACK to the constellation, commands to the device, task_end to both', async () => {
    const d = await device('dev-1', 'windows');
    const k = await constellation('k@dev-1', 'dev-1');
    d.autoAnswer();
    k.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      client_id: 'k@dev-1',
      target_id: 'dev-1',
      request: planRequest(2),
      task_name: 'galaxy/k/t1',
      session_id: 'k@t1',
    });
    const ack = await k.next((m) => m.type === 'heartbeat' && m.session_id !== null);
    expect(ack.session_id).toBe('k@t1');
    const endK = await k.next((m) => m.type === 'task_end');
    const endD = await d.next((m) => m.type === 'task_end', 5000, 0);
    expect(endK).toMatchObject({ status: 'completed', session_id: 'k@t1', task_name: 'galaxy_k_t1' });
    expect(endD.response_id).toBe(endK.response_id);
    expect(k.ofType('command')).toHaveLength(0);
    const cmds = d.ofType('command');
    expect(cmds.map((c) => c.agent_name)).toEqual(['HostAgent', 'AppAgent']);
    expect(d.ofType('heartbeat').filter((m) => m.session_id)).toHaveLength(0); // the ACK went only to the requester
  });

  it('rejects an empty request, and constellation tasks without or outside their target', async () => {
    const d = await device('dev-1');
    await device('dev-2');
    d.send({ type: 'task', status: 'continue', request: '   ' });
    expect((await d.next((m) => m.type === 'error')).error).toBe('Task requests require a non-empty request');
    const k = await constellation('k', null);
    k.send({ type: 'task', status: 'continue', client_type: 'constellation', request: 'x' });
    expect((await k.next((m) => m.type === 'error')).error).toBe(
      'Constellation task requests require target_id',
    );
    k.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      request: 'x',
      target_id: 'nope',
    });
    expect((await k.next((m) => m.type === 'error')).error).toBe("Target device 'nope' is not connected");
    await constellation('k2', null);
    k.send({ type: 'task', status: 'continue', client_type: 'constellation', request: 'x', target_id: 'k2' });
    expect((await k.next((m) => m.type === 'error')).error).toBe(
      'Constellation tasks may only target device clients',
    );
    const scoped = await constellation('k@dev-1', 'dev-1');
    scoped.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      request: 'x',
      target_id: 'dev-2',
    });
    expect((await scoped.next((m) => m.type === 'error')).error).toBe(
      'Not authorized to run tasks on this device',
    );
    expect(server.tasks.live.size).toBe(0);
  });

  it('refuses a device task that targets another device, and a forged constellation task', async () => {
    const d = await device('dev-1');
    await device('victim');
    d.send({ type: 'task', status: 'continue', request: 'x', target_id: 'victim' });
    expect((await d.next((m) => m.type === 'error')).error).toBe(
      'Device clients may not target other devices',
    );
    d.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      request: 'x',
      target_id: 'victim',
    });
    expect((await d.next((m) => m.type === 'error')).error).toBe(
      'client_type does not match the registered connection',
    );
    d.send({ type: 'task', status: 'continue', client_id: 'victim', request: 'x' });
    expect((await d.next((m) => m.type === 'error')).error).toBe(
      'client_id does not match the registered connection',
    );
    expect(server.tasks.live.size).toBe(0);
    expect(d.ofType('heartbeat').filter((m) => m.session_id)).toHaveLength(0);
  });

  it('guards session ids: another client gets "owned by another client", the owner "already running"', async () => {
    const sameId = (c: RawClient): void =>
      c.send({
        type: 'task',
        status: 'continue',
        client_type: 'constellation',
        target_id: 'dev-1',
        request: planRequest(1),
        session_id: 'constellation-demo@task_001',
      });
    const d = await device('dev-1');
    const k = await constellation('k@dev-1', 'dev-1');
    const other = await constellation('other@dev-1', 'dev-1');
    sameId(k);
    await k.next((m) => m.type === 'heartbeat' && m.session_id !== null);
    await d.next((m) => m.type === 'command', 5000, 0);
    sameId(other);
    expect((await other.next((m) => m.type === 'error')).error).toBe(
      "session_id 'constellation-demo@task_001' is owned by another client",
    );
    sameId(k);
    expect((await k.next((m) => m.type === 'error')).error).toBe(
      "session_id 'constellation-demo@task_001' is already running",
    );
    expect(other.ofType('heartbeat').filter((m) => m.session_id)).toHaveLength(0);
    expect(other.ofType('task_end')).toHaveLength(0);
    // Finish the task; the owner may then reuse its id, and nothing of the old run is replayed.
    d.autoAnswer();
    const cmd = d.ofType('command')[0]!;
    d.send({
      type: 'command_results',
      status: 'continue',
      session_id: cmd.session_id,
      prev_response_id: cmd.response_id,
      action_results: [{ status: 'success', result: 'first', call_id: cmd.actions![0]!.call_id }],
    });
    await k.next((m) => m.type === 'task_end');
    sameId(k);
    const end2 = await k.next((m) => m.type === 'task_end');
    expect(end2.status).toBe('completed');
    expect(JSON.stringify(end2.result)).not.toContain('first');
    // Ended, the id is still the owner's: another client cannot replace its record (and result) with its own run.
    const before = await getJson(`/sessions/${encodeURIComponent('constellation-demo@task_001')}`);
    sameId(other);
    expect((await other.next((m) => m.type === 'error')).error).toBe(
      "session_id 'constellation-demo@task_001' is owned by another client",
    );
    expect(other.ofType('heartbeat').filter((m) => m.session_id)).toHaveLength(0);
    expect(await getJson(`/sessions/${encodeURIComponent('constellation-demo@task_001')}`)).toEqual(before);
  });

  it('drops command_results from anyone but the executor, and never creates a session from them', async () => {
    const d = await device('dev-1');
    const intruder = await device('intruder');
    d.send({ type: 'task', status: 'continue', request: planRequest(1), session_id: 's-1' });
    const cmd = await d.next((m) => m.type === 'command');
    intruder.send({
      type: 'command_results',
      status: 'continue',
      session_id: 's-1',
      prev_response_id: cmd.response_id,
      action_results: [{ status: 'success', result: 'forged' }],
    });
    for (let i = 0; i < 50; i++)
      intruder.send({
        type: 'command_results',
        status: 'continue',
        session_id: `phantom-${i}`,
        prev_response_id: 'r',
        action_results: [],
      });
    intruder.send({ type: 'heartbeat', status: 'ok' });
    await intruder.next((m) => m.type === 'heartbeat');
    expect(server.tasks.live.size).toBe(1);
    expect(intruder.frames.map((f) => f.msg.type)).toEqual(['heartbeat', 'heartbeat']); // registration + heartbeat replies: nothing for results
    d.send({
      type: 'command_results',
      status: 'continue',
      session_id: 's-1',
      prev_response_id: cmd.response_id,
      action_results: [{ status: 'success', result: 'real', call_id: cmd.actions![0]!.call_id }],
    });
    const end = await d.next((m) => m.type === 'task_end');
    expect(JSON.stringify(end.result)).toContain('real');
    expect(JSON.stringify(end.result)).not.toContain('forged');
  });

  it('answers a command that times out with synthetic failures and ends the task failed, naming the step', async () => {
    const d = await device('dev-1');
    d.send({ type: 'task', status: 'continue', request: planRequest(2, 'slow_tool') });
    const end = await d.next((m) => m.type === 'task_end', 5000);
    expect(end.status).toBe('failed');
    expect(end.error).toContain('step 0');
    expect(end.error).toContain('slow_tool');
    expect(JSON.stringify(end.result)).toContain('command timed out after 400 ms');
    expect(d.ofType('command')).toHaveLength(1);
  });

  it('ends a natural-language request failed with a clear error when no agent is configured', async () => {
    const d = await device('dev-1');
    d.send({ type: 'task', status: 'continue', request: 'Open Notepad and type hello' });
    const end = await d.next((m) => m.type === 'task_end');
    expect(end.status).toBe('failed');
    expect(end.error).toMatch(/not a plan/);
  });

  it('answers heartbeats, echoes client errors, and refuses a second register', async () => {
    const d = await device('dev-1');
    d.send({ type: 'heartbeat', status: 'ok', client_id: 'dev-1' });
    expect(await d.next()).toMatchObject({ type: 'heartbeat', status: 'ok', session_id: null });
    d.send({ type: 'error', status: 'error', error: 'boom' });
    expect(await d.next()).toMatchObject({ type: 'error', error: 'boom' });
    d.send({ type: 'error', status: 'error' });
    expect(await d.next()).toMatchObject({ type: 'error', error: 'Unknown error' });
    d.send({ type: 'register', status: 'ok', client_id: 'dev-1' });
    expect(await d.next()).toMatchObject({
      type: 'error',
      error: 'Unknown message type: ClientMessageType.REGISTER',
    });
    d.send({ type: 'task_end', status: 'completed' });
    expect(await d.next()).toMatchObject({
      type: 'error',
      error: 'Unknown message type: ClientMessageType.TASK_END',
    });
  });

  it('answers a validation error with an error frame naming the field, and keeps the connection', async () => {
    const d = await device('dev-1');
    d.send({ type: 'heartbeat', status: 'ok', client_id: 123 });
    const err = await d.next();
    expect(err.type).toBe('error');
    expect(err.error).toContain('client_id');
    d.send({ type: 'HEARTBEAT', status: 'ok' });
    expect((await d.next()).error).toContain('type');
    d.send({ type: 'heartbeat', status: 'ok' });
    expect(await d.next()).toMatchObject({ type: 'heartbeat', status: 'ok' });
  });

  it('accepts a Galaxy heartbeat (client_type device) on a constellation connection (Q1)', async () => {
    await device('dev-1');
    const k = await constellation('k@dev-1', 'dev-1');
    k.send({
      type: 'heartbeat',
      status: 'ok',
      client_type: 'device',
      client_id: 'k@dev-1',
      metadata: { device_id: 'dev-1' },
    });
    expect(await k.next()).toMatchObject({ type: 'heartbeat', status: 'ok' });
  });

  it('serves device info to constellations only, scoped to their device', async () => {
    const d = await device('dev-1');
    await device('dev-2');
    const k = await constellation('k@dev-1', 'dev-1');
    k.send({
      type: 'device_info_request',
      status: 'ok',
      client_type: 'constellation',
      target_id: 'dev-1',
      request_id: 'device_info_dev-1_1.5',
    });
    const info = await k.next();
    expect(info).toMatchObject({
      type: 'device_info_response',
      status: 'ok',
      response_id: 'device_info_dev-1_1.5',
      result: { device_id: 'dev-1', hostname: 'host-dev-1' },
    });
    k.send({
      type: 'device_info_request',
      status: 'ok',
      client_type: 'constellation',
      target_id: 'dev-2',
      request_id: 'r2',
    });
    const denied = await k.next();
    expect(denied).toMatchObject({
      type: 'error',
      error: 'Not authorized to request device info for this device',
    });
    expect(JSON.stringify(k.frames.map((f) => f.msg))).not.toContain('host-dev-2');
    d.send({ type: 'device_info_request', status: 'ok', target_id: 'dev-2', request_id: 'r3' });
    expect(await d.next()).toMatchObject({
      type: 'error',
      error: 'DEVICE_INFO_REQUEST is permitted only for constellation clients',
    });
    const free = await constellation('free', null);
    free.send({
      type: 'device_info_request',
      status: 'ok',
      client_type: 'constellation',
      target_id: 'ghost',
      request_id: 'r4',
    });
    expect(await free.next()).toMatchObject({
      type: 'device_info_response',
      result: { error: 'Device ghost not found or no system info available' },
    });
  });
});

describe('mixed fleets', () => {
  it('lets a JSON constellation drive a msgpack device, and a msgpack constellation drive a JSON device', async () => {
    const server = await startTestServer();
    const all: RawClient[] = [];
    try {
      for (const [kc, dc] of [
        ['json', 'msgpack'],
        ['msgpack', 'json'],
      ] as const) {
        const d = await RawClient.connect(server.url, dc);
        const k = await RawClient.connect(server.url, kc);
        all.push(d, k);
        await d.register(`dev-${dc}`, { metadata: { platform: 'mobile' } });
        await k.register(`k-${kc}`, { client_type: 'constellation', target_id: `dev-${dc}` });
        d.autoAnswer();
        k.send({
          type: 'task',
          status: 'continue',
          client_type: 'constellation',
          target_id: `dev-${dc}`,
          request: planRequest(2),
          session_id: `mixed-${kc}`,
        });
        const end = await k.next((m) => m.type === 'task_end');
        expect(end.status).toBe('completed');
        expect(k.frames.every((f) => f.isBinary === (kc === 'msgpack'))).toBe(true);
        expect(d.frames.every((f) => f.isBinary === (dc === 'msgpack'))).toBe(true);
        expect(d.ofType('command').map((c) => c.agent_name)).toEqual(['MobileAgent', 'MobileAgent']);
      }
    } finally {
      await Promise.all(all.map((c) => c.close()));
      await server.close();
    }
  });
});
