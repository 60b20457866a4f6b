/**
 * Tasks, commands, disconnects, device info and identity pinning (ufo-aip.md §5.5, §6–§8), in-process over the
 * memory transport, for both codecs.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { planRequest, startMemoryServer, waitFor, type MemoryHarness } from './harness.js';
import type { Codec } from './memory-client.js';

describe.each<Codec>(['json', 'msgpack'])('tasks in-process over %s (ufo-aip.md §6–§7)', (codec) => {
  let h: MemoryHarness;
  const device = (id: string, platform = 'linux') => h.device(id, { platform, codec });
  const constellation = (id: string, target: string | null) => h.constellation(id, target, codec);
  const task = (extra: Record<string, unknown>) => ({ type: 'task', status: 'continue', ...extra });
  const ktask = (target: string | null, extra: Record<string, unknown>) =>
    task({ client_type: 'constellation', target_id: target, ...extra });
  beforeEach(async () => {
    h = await startMemoryServer({ commandTimeoutMs: 60_000 });
  });
  afterEach(async () => {
    await h.close();
  });

  it('runs a device task for itself: ACK, commands with fresh ids, matched results, task_end completed', async () => {
    const d = await device('dev-1');
    d.autoAnswer((tool, m) => `${tool}:${String(m.actions![0]!.parameters!.i)}`);
    d.send(task({ client_id: 'dev-1', request: planRequest(3), task_name: 'notepad/hello' }));
    const ack = await d.next((m) => m.type === 'heartbeat' && m.session_id !== null);
    expect(ack.session_id).toMatch(/^[0-9a-f-]{36}$/);
    const end = await d.next((m) => m.type === 'task_end');
    const commands = d.ofType('command');
    expect(commands).toHaveLength(3);
    for (const [i, c] of commands.entries()) {
      expect(c).toMatchObject({
        status: 'continue',
        agent_name: 'LinuxAgent',
        session_id: ack.session_id,
        task_name: 'notepad_hello',
      });
      expect(c.actions).toEqual([
        {
          tool_name: 'noop',
          tool_type: 'action',
          parameters: { i },
          call_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        },
      ]);
    }
    expect(new Set(commands.map((c) => c.response_id)).size).toBe(3);
    expect(new Set(commands.map((c) => c.actions![0]!.call_id)).size).toBe(3);
    expect(end).toMatchObject({
      status: 'completed',
      session_id: ack.session_id,
      task_name: 'notepad_hello',
      error: null,
    });
    const result = end.result as {
      steps_completed: number;
      steps: { step: number; results: { result: string; call_id: string }[] }[];
    };
    expect(result.steps_completed).toBe(3);
    expect(result.steps.map((s) => s.results[0]!.result)).toEqual(['noop:0', 'noop:1', 'noop:2']);
    expect(result.steps.map((s) => s.results[0]!.call_id)).toEqual(
      commands.map((c) => c.actions![0]!.call_id),
    );
    expect(d.frames.every((f) => f.isBinary === (codec === 'msgpack'))).toBe(true);
    expect(h.server.tasks.live.size).toBe(0);
    expect(await h.server.results.get('notepad_hello')).toMatchObject({
      status: 'done',
      task_status: 'completed',
      session_id: ack.session_id,
      error: null,
    });
  });

  it('runs a constellation task: ACK to the constellation, commands to the device, task_end to both', async () => {
    const d = await device('dev-1', 'windows');
    const k = await constellation('k@dev-1', 'dev-1');
    d.autoAnswer();
    k.send(
      ktask('dev-1', {
        client_id: 'k@dev-1',
        request: planRequest(2),
        task_name: 'galaxy/k/t1',
        session_id: 'k@t1',
      }),
    );
    const ack = await k.next((m) => m.type === 'heartbeat' && m.session_id !== null);
    expect(ack.session_id).toBe('k@t1');
    const endK = await k.next((m) => m.type === 'task_end');
    const endD = await d.next((m) => m.type === 'task_end', 2000, 0);
    expect(endK).toMatchObject({
      status: 'completed',
      session_id: 'k@t1',
      task_name: 'galaxy_k_t1',
      error: null,
    });
    expect(endK.result).toMatchObject({ steps_completed: 2 });
    expect(JSON.stringify(endK.result)).toContain('did noop');
    expect(endD.response_id).toBe(endK.response_id);
    expect(k.ofType('command')).toHaveLength(0);
    expect(d.ofType('command').map((c) => c.agent_name)).toEqual(['HostAgent', 'AppAgent']);
    expect(d.ofType('heartbeat').filter((m) => m.session_id)).toHaveLength(0); // the ACK went only to the requester
    expect(k.types()).toEqual(['heartbeat', 'heartbeat', 'task_end']);
  });

  it('fills missing results with failures and ends the task failed, naming the step and tool', async () => {
    const d = await device('dev-1');
    d.send(task({ request: planRequest(2, 'flaky') }));
    const cmd = await d.next((m) => m.type === 'command');
    d.send({
      type: 'command_results',
      status: 'continue',
      session_id: cmd.session_id,
      prev_response_id: cmd.response_id,
      action_results: null,
    });
    const end = await d.next((m) => m.type === 'task_end');
    expect(end.status).toBe('failed');
    expect(end.error).toMatch(/^Plan step 0 failed: tool 'flaky': /);
    expect(end.error).toContain('executor returned no results (action_results was null)');
    expect(d.ofType('command')).toHaveLength(1);
  });

  it('ends a command that is never answered at the command timeout, with the catalogue text', async () => {
    await h.close();
    h = await startMemoryServer({ commandTimeoutMs: 50 });
    const d = await device('dev-1');
    d.send(task({ request: planRequest(2, 'slow_tool') }));
    const end = await d.next((m) => m.type === 'task_end', 2000);
    expect(end.status).toBe('failed');
    expect(end.error).toContain('step 0');
    expect(end.error).toContain('slow_tool');
    expect(JSON.stringify(end.result)).toContain('command timed out after 50 ms');
    expect(d.ofType('command')).toHaveLength(1);
  });

  it('drops command_results from anyone but the executor', async () => {
    const d = await device('dev-1');
    const intruder = await device('intruder');
    d.send(task({ request: planRequest(1), session_id: 's-1' }));
    const cmd = await d.next((m) => m.type === 'command');
    intruder.send({
      type: 'command_results',
      status: 'continue',
      session_id: 's-1',
      prev_response_id: cmd.response_id,
      action_results: [{ status: 'success', result: 'forged' }],
    });
    intruder.send({
      type: 'command_results',
      status: 'continue',
      session_id: 'phantom',
      prev_response_id: 'r',
      action_results: [],
    });
    intruder.send({ type: 'heartbeat', status: 'ok' });
    await intruder.next((m) => m.type === 'heartbeat');
    expect(h.server.tasks.live.size).toBe(1);
    expect(intruder.types()).toEqual(['heartbeat', 'heartbeat']);
    d.send({
      type: 'command_results',
      status: 'continue',
      session_id: 's-1',
      prev_response_id: cmd.response_id,
      action_results: [{ status: 'success', result: 'real', call_id: cmd.actions![0]!.call_id }],
    });
    const end = await d.next((m) => m.type === 'task_end');
    expect(end.status).toBe('completed');
    expect(JSON.stringify(end.result)).toContain('real');
    expect(JSON.stringify(end.result)).not.toContain('forged');
  });

  it('guards session ids: another client gets "owned by another client", the owner "already running"', async () => {
    const d = await device('dev-1');
    const k = await constellation('k@dev-1', 'dev-1');
    const other = await constellation('other@dev-1', 'dev-1');
    k.send(ktask('dev-1', { request: planRequest(1), session_id: 'demo@task_001' }));
    await d.next((m) => m.type === 'command', 2000, 0);
    other.send(ktask('dev-1', { request: planRequest(1), session_id: 'demo@task_001' }));
    expect((await other.next((m) => m.type === 'error')).error).toBe(
      "session_id 'demo@task_001' is owned by another client",
    );
    k.send(ktask('dev-1', { request: planRequest(1), session_id: 'demo@task_001' }));
    expect((await k.next((m) => m.type === 'error')).error).toBe(
      "session_id 'demo@task_001' is already running",
    );
    expect(h.server.tasks.live.size).toBe(1);
    d.autoAnswer();
    const cmd = d.ofType('command')[0]!;
    d.send({
      type: 'command_results',
      status: 'continue',
      session_id: cmd.session_id,
      prev_response_id: cmd.response_id,
      action_results: [{ status: 'success', result: 'first', call_id: cmd.actions![0]!.call_id }],
    });
    expect(await k.next((m) => m.type === 'task_end')).toMatchObject({
      status: 'completed',
      session_id: 'demo@task_001',
    });
    expect(other.ofType('task_end')).toHaveLength(0);
  });

  it('refuses invalid task requests with the catalogue texts', async () => {
    const d = await device('dev-1');
    await device('dev-2');
    d.send(task({ request: '   ' }));
    expect((await d.next((m) => m.type === 'error')).error).toBe('Task requests require a non-empty request');
    const k = await constellation('k', null);
    k.send(ktask(null, { request: 'x' }));
    expect((await k.next((m) => m.type === 'error')).error).toBe(
      'Constellation task requests require target_id',
    );
    k.send(ktask('nope', { request: 'x' }));
    expect((await k.next((m) => m.type === 'error')).error).toBe("Target device 'nope' is not connected");
    await constellation('k2', null);
    k.send(ktask('k2', { request: 'x' }));
    expect((await k.next((m) => m.type === 'error')).error).toBe(
      'Constellation tasks may only target device clients',
    );
    const scoped = await constellation('k@dev-1', 'dev-1');
    scoped.send(ktask('dev-2', { request: 'x' }));
    expect((await scoped.next((m) => m.type === 'error')).error).toBe(
      'Not authorized to run tasks on this device',
    );
    // msgpack carries strings as UTF-8, which has no unpaired surrogates: its decoder refuses such a frame first.
    for (const [sid, why] of [
      ['s\u0000x', 'session_id must not contain U+0000 or an unpaired UTF-16 surrogate'],
      [
        's\udc00',
        codec === 'json'
          ? 'session_id must not contain U+0000 or an unpaired UTF-16 surrogate'
          : 'Frame is not valid UTF-8',
      ],
    ]) {
      d.send(task({ request: planRequest(1), session_id: sid }));
      expect((await d.next((m) => m.type === 'error')).error).toBe(why);
    }
    d.send(task({ request: 'x', metadata: { mode: 'warp' } }));
    expect((await d.next((m) => m.type === 'error')).error).toMatch(
      /^The warp mode is not supported on linux\. Supported modes: /,
    );
    expect(h.server.tasks.live.size).toBe(0);
  });

  it('ends a natural-language request failed when no agent is configured', async () => {
    const d = await device('dev-1');
    d.send(task({ request: 'Open Notepad and type hello' }));
    const end = await d.next((m) => m.type === 'task_end');
    expect(end.status).toBe('failed');
    expect(end.error).toBe(
      'The request is not a plan (a JSON object with a "steps" array) and no agent is configured for natural-language requests (start aipd with --llm-base-url and --llm-model)',
    );
  });
});

describe.each<Codec>(['json', 'msgpack'])('disconnects in-process over %s (ufo-aip.md §8.4, Q4)', (codec) => {
  let h: MemoryHarness;
  beforeEach(async () => {
    // A long command timeout: only the disconnect can end these tasks quickly.
    h = await startMemoryServer({ commandTimeoutMs: 600_000 });
  });
  afterEach(async () => {
    await h.close();
  });

  it('fails a constellation task at once when its device terminates mid-task', async () => {
    const d = await h.device('dev-1', { codec });
    const k = await h.constellation('k@dev-1', 'dev-1', codec);
    k.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      target_id: 'dev-1',
      request: planRequest(5),
      session_id: 'k@t1',
    });
    await d.next((m) => m.type === 'command', 2000, 0);
    const t0 = Date.now();
    d.terminate();
    const end = await k.next((m) => m.type === 'task_end', 500);
    expect(Date.now() - t0).toBeLessThan(200);
    expect(end).toMatchObject({
      status: 'failed',
      session_id: 'k@t1',
      error: 'Task was cancelled because target device disconnected',
    });
    expect(h.server.tasks.live.size).toBe(0);
    expect(h.server.registry.get('dev-1')).toBeUndefined();
    expect(k.closed).toBe(false);
    expect(await d.waitClose()).toBe(1006);
  });

  it("cancels a device's own task when it disconnects, recording the failure", async () => {
    const d = await h.device('dev-1', { codec });
    d.send({ type: 'task', status: 'continue', request: planRequest(3), task_name: 'own' });
    await d.next((m) => m.type === 'command');
    expect(h.server.tasks.live.size).toBe(1);
    d.close();
    await waitFor(() => h.server.tasks.live.size === 0, 500);
    const sid = d.ofType('heartbeat').find((m) => m.session_id)!.session_id!;
    expect(await h.server.results.get('own')).toMatchObject({
      session_id: sid,
      status: 'done',
      task_status: 'failed',
      error: 'Task was cancelled because target device disconnected',
    });
  });

  it('tells the executing device when the requesting constellation leaves; the device keeps working', async () => {
    const d = await h.device('dev-1', { codec });
    const k = await h.constellation('k@dev-1', 'dev-1', codec);
    k.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      target_id: 'dev-1',
      request: planRequest(5),
      session_id: 'k@t2',
    });
    await d.next((m) => m.type === 'command', 2000, 0);
    k.close();
    const end = await d.next((m) => m.type === 'task_end', 500, 0);
    expect(end).toMatchObject({
      status: 'failed',
      session_id: 'k@t2',
      error: 'Task was cancelled because the requesting client disconnected',
    });
    expect(h.server.tasks.live.size).toBe(0);
    expect(k.ofType('task_end')).toHaveLength(0);
    d.send({ type: 'heartbeat', status: 'ok' });
    expect(await d.next()).toMatchObject({ type: 'heartbeat', status: 'ok' });
  });

  it('ends running tasks on shutdown with task_end failed and closes every connection with 1001', async () => {
    const d = await h.device('dev-1', { codec, platform: 'windows' });
    const k = await h.constellation('k@dev-1', 'dev-1', codec);
    k.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      target_id: 'dev-1',
      request: planRequest(3),
      session_id: 'k@t3',
    });
    await d.next((m) => m.type === 'command', 2000, 0);
    await h.close();
    for (const c of [k, d]) {
      expect(await c.waitClose()).toBe(1001);
      expect(c.closeReason).toBe('server shutting down');
      expect(c.ofType('task_end')).toEqual([
        expect.objectContaining({
          status: 'failed',
          session_id: 'k@t3',
          error: 'Task was cancelled because the server is shutting down',
        }),
      ]);
    }
    expect(h.memory.connect(`token=x`)).toEqual({ refused: { status: 503, body: 'not listening' } });
  });
});

describe('mixed codecs in-process', () => {
  let h: MemoryHarness;
  beforeEach(async () => {
    h = await startMemoryServer();
  });
  afterEach(async () => {
    await h.close();
  });

  it('lets a JSON constellation drive a msgpack device, and a msgpack constellation drive a JSON device', async () => {
    for (const [kc, dc] of [
      ['json', 'msgpack'],
      ['msgpack', 'json'],
    ] as const) {
      const d = await h.device(`dev-${dc}`, { platform: 'mobile', codec: dc });
      const k = await h.constellation(`k-${kc}`, `dev-${dc}`, kc);
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
      expect(end).toMatchObject({ status: 'completed', session_id: `mixed-${kc}` });
      expect(k.frames.every((f) => f.isBinary === (kc === 'msgpack'))).toBe(true);
      expect(d.frames.every((f) => f.isBinary === (dc === 'msgpack'))).toBe(true);
      expect(d.ofType('command').map((c) => c.agent_name)).toEqual(['MobileAgent', 'MobileAgent']);
    }
  });
});

describe.each<Codec>(['json', 'msgpack'])(
  'device info and identity in-process over %s (§5.5, §9.4)',
  (codec) => {
    let h: MemoryHarness;
    beforeEach(async () => {
      h = await startMemoryServer();
    });
    afterEach(async () => {
      await h.close();
    });

    it('answers a constellation device_info_request with the device system_info', async () => {
      await h.device('dev-1', { codec });
      const k = await h.constellation('k@dev-1', 'dev-1', codec);
      k.send({
        type: 'device_info_request',
        status: 'ok',
        client_type: 'constellation',
        target_id: 'dev-1',
        request_id: 'device_info_dev-1_1.5',
      });
      expect(await k.next()).toMatchObject({
        type: 'device_info_response',
        status: 'ok',
        response_id: 'device_info_dev-1_1.5',
        result: { device_id: 'dev-1', hostname: 'host-dev-1' },
      });
      // Without target_id, a scoped constellation gets its own device.
      k.send({
        type: 'device_info_request',
        status: 'ok',
        client_type: 'constellation',
        request_id: 'r-own',
      });
      expect(await k.next()).toMatchObject({ response_id: 'r-own', result: { device_id: 'dev-1' } });
    });

    it('refuses device info to devices (role) and outside a constellation scope, and reports unknown devices', async () => {
      const d = await h.device('dev-1', { codec });
      await h.device('dev-2', { codec });
      const k = await h.constellation('k@dev-1', 'dev-1', codec);
      k.send({
        type: 'device_info_request',
        status: 'ok',
        client_type: 'constellation',
        target_id: 'dev-2',
        request_id: 'r2',
      });
      expect(await k.next()).toMatchObject({
        type: 'error',
        error: 'Not authorized to request device info for this device',
      });
      expect(JSON.stringify(k.frames.map((f) => f.msg))).not.toContain('host-dev-2');
      d.send({ type: 'device_info_request', status: 'ok', target_id: 'dev-2', request_id: 'r3' });
      expect(await d.next()).toMatchObject({
        type: 'error',
        error: 'DEVICE_INFO_REQUEST is permitted only for constellation clients',
      });
      const free = await h.constellation('free', null, codec);
      free.send({
        type: 'device_info_request',
        status: 'ok',
        client_type: 'constellation',
        target_id: 'ghost',
        request_id: 'r4',
      });
      expect(await free.next()).toMatchObject({
        type: 'device_info_response',
        response_id: 'r4',
        result: { error: 'Device ghost not found or no system info available' },
      });
      free.send({
        type: 'device_info_request',
        status: 'ok',
        client_type: 'constellation',
        target_id: 'dev-2',
        request_id: 'r5',
      });
      expect(await free.next()).toMatchObject({ response_id: 'r5', result: { hostname: 'host-dev-2' } });
    });

    it('pins identity: a forged client_id or client_type is refused and starts nothing', async () => {
      const d = await h.device('dev-1', { codec });
      await h.device('victim', { codec });
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
      d.send({ type: 'heartbeat', status: 'ok', client_id: 'victim' });
      expect((await d.next()).error).toBe('client_id does not match the registered connection');
      const k = await h.constellation('k', null, codec);
      k.send({ type: 'device_info_request', status: 'ok', target_id: 'victim', request_id: 'r' }); // client_type defaults to device
      expect((await k.next()).error).toBe('client_type does not match the registered connection');
      expect(h.server.tasks.live.size).toBe(0);
      expect(d.ofType('heartbeat').filter((m) => m.session_id)).toHaveLength(0);
    });

    it('answers heartbeats, echoes client errors, and refuses unknown or server-only message types', async () => {
      const d = await h.device('dev-1', { codec });
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
      d.send({ type: 'heartbeat', status: 'ok', client_id: 123 });
      expect((await d.next()).error).toContain('client_id');
      d.send({ type: 'HEARTBEAT', status: 'ok' });
      expect((await d.next()).error).toContain('type');
      expect(d.closed).toBe(false);
    });

    it('accepts a Galaxy heartbeat (client_type device) on a constellation connection (Q1)', async () => {
      await h.device('dev-1', { codec });
      const k = await h.constellation('k@dev-1', 'dev-1', codec);
      k.send({
        type: 'heartbeat',
        status: 'ok',
        client_type: 'device',
        client_id: 'k@dev-1',
        metadata: { device_id: 'dev-1' },
      });
      expect(await k.next()).toMatchObject({ type: 'heartbeat', status: 'ok', error: null });
    });
  },
);
