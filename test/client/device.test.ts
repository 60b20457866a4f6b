import { afterEach, describe, expect, it } from 'vitest';
import { AipDeviceClient, NO_HANDLER_ERROR } from '../../src/client/index.js';
import type { ResultInput, ServerMessage } from '../../protocol/index.js';
import { MockAipServer } from './mock-server.js';

let server: MockAipServer | null = null;
const clients: AipDeviceClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server?.close();
  server = null;
});

async function device(opts: Partial<ConstructorParameters<typeof AipDeviceClient>[0]> = {}) {
  server ??= await MockAipServer.start();
  const c = new AipDeviceClient({
    url: server.url,
    token: 'secret',
    clientId: 'dev1',
    reconnect: false,
    ...opts,
  });
  clients.push(c);
  await c.connect();
  return { c, srv: server, conn: server.last };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('AipDeviceClient commands', () => {
  it('answers a command with one result per action, copying call_id and echoing ids and status', async () => {
    const seen: ServerMessage[] = [];
    const { srv, conn } = await device({
      onCommand: (cmd) => {
        seen.push(cmd);
        return [
          { status: 'success', result: 'shot' },
          { status: 'failure', error: 'nope', call_id: 'mine' },
        ];
      },
    });
    conn.send({
      type: 'command',
      status: 'continue',
      session_id: 's1',
      response_id: 'r-1',
      actions: [
        { tool_name: 'capture', tool_type: 'data_collection', call_id: 'c1' },
        { tool_name: 'click', tool_type: 'action', call_id: 'c2', parameters: { x: 1 } },
      ],
    });
    const { msg } = await srv.next((m) => m.type === 'command_results');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.actions?.[1]?.parameters).toEqual({ x: 1 });
    expect(msg.prev_response_id).toBe('r-1');
    expect(msg.session_id).toBe('s1');
    expect(msg.status).toBe('continue');
    expect(msg.client_id).toBe('dev1');
    expect(msg.action_results).toEqual([
      { status: 'success', result: 'shot', error: null, namespace: null, call_id: 'c1' },
      { status: 'failure', result: null, error: 'nope', namespace: null, call_id: 'mine' },
    ]);
  });

  it('answers null or empty actions with [] without calling the handler', async () => {
    let calls = 0;
    const { srv, conn } = await device({ onCommand: () => (calls++, []) });
    conn.send({ type: 'command', status: 'continue', session_id: 's1', response_id: 'r-a', actions: null });
    conn.send({ type: 'command', status: 'completed', session_id: 's1', response_id: 'r-b', actions: [] });
    const a = await srv.next((m) => m.prev_response_id === 'r-a');
    const b = await srv.next((m) => m.prev_response_id === 'r-b');
    expect(a.msg.action_results).toEqual([]);
    expect(b.msg.action_results).toEqual([]);
    expect(b.msg.status).toBe('completed');
    expect(calls).toBe(0);
  });

  it('runs one session in order but different sessions concurrently', async () => {
    const started: string[] = [];
    const { srv, conn } = await device({
      onCommand: async (cmd) => {
        started.push(cmd.response_id!);
        if (cmd.response_id === 'a1') await sleep(80);
        return [{ status: 'success', result: cmd.response_id }];
      },
    });
    const finished: string[] = [];
    srv.onMessage = (_c, m) => {
      if (m.type === 'command_results') finished.push(m.prev_response_id!);
    };
    const act = [{ tool_name: 't', tool_type: 'action' as const }];
    conn.send({ type: 'command', status: 'continue', session_id: 'A', response_id: 'a1', actions: act });
    conn.send({ type: 'command', status: 'continue', session_id: 'A', response_id: 'a2', actions: act });
    conn.send({ type: 'command', status: 'continue', session_id: 'B', response_id: 'b1', actions: act });
    await srv.next((m) => m.prev_response_id === 'a2');
    // b1 overtook the slow a1; a2 waited for a1 to finish before starting.
    expect(finished).toEqual(['b1', 'a1', 'a2']);
    expect(started.indexOf('a2')).toBeGreaterThan(started.indexOf('b1'));
  });

  it('answers failures for the whole batch when the handler throws, and keeps running', async () => {
    let n = 0;
    const { c, srv, conn } = await device({
      onCommand: () => {
        if (n++ === 0) throw new Error('boom');
        return [{ status: 'success', result: 'ok' }];
      },
    });
    const actions = [
      { tool_name: 'a', tool_type: 'action' as const, call_id: 'x1' },
      { tool_name: 'b', tool_type: 'action' as const, call_id: 'x2' },
    ];
    conn.send({ type: 'command', status: 'continue', session_id: 's', response_id: 'r1', actions });
    const { msg } = await srv.next((m) => m.prev_response_id === 'r1');
    expect(msg.action_results?.map((r) => [r.status, r.call_id])).toEqual([
      ['failure', 'x1'],
      ['failure', 'x2'],
    ]);
    expect(msg.action_results?.[0]?.error).toContain('boom');
    conn.send({
      type: 'command',
      status: 'continue',
      session_id: 's',
      response_id: 'r2',
      actions: actions.slice(0, 1),
    });
    const second = await srv.next((m) => m.prev_response_id === 'r2');
    expect(second.msg.action_results?.[0]?.status).toBe('success');
    expect(c.connected).toBe(true);
  });

  it('pads missing and replaces invalid handler results with failures', async () => {
    const { srv, conn } = await device({
      onCommand: () => [{ status: 'bogus' } as unknown as ResultInput],
    });
    const actions = [
      { tool_name: 'a', tool_type: 'action' as const, call_id: 'k1' },
      { tool_name: 'b', tool_type: 'action' as const, call_id: 'k2' },
    ];
    conn.send({ type: 'command', status: 'continue', session_id: 's', response_id: 'r', actions });
    const { msg } = await srv.next((m) => m.type === 'command_results');
    expect(msg.action_results?.map((r) => [r.status, r.call_id])).toEqual([
      ['failure', 'k1'],
      ['failure', 'k2'],
    ]);
    expect(msg.action_results?.[1]?.error).toMatch(/no result/);
  });

  it('answers "no handler" failures when no onCommand is configured', async () => {
    const { srv, conn } = await device();
    conn.send({
      type: 'command',
      status: 'continue',
      session_id: 's',
      response_id: 'r',
      actions: [{ tool_name: 'a', tool_type: 'action', call_id: 'z' }],
    });
    const { msg } = await srv.next((m) => m.type === 'command_results');
    expect(msg.action_results).toEqual([
      { status: 'failure', error: NO_HANDLER_ERROR, result: null, namespace: null, call_id: 'z' },
    ]);
  });
});

describe('AipDeviceClient registration metadata', () => {
  it('adds the `metadata` option to register, read again at each registration; standard keys win', async () => {
    let n = 0;
    const { srv } = await device({
      platform: 'linux',
      metadata: () => ({ aipd_device: { version: 1, n: ++n }, platform: 'ignored' }),
    });
    const reg = srv.registrations[0]!;
    expect(reg.metadata).toMatchObject({ aipd_device: { version: 1, n: 1 }, platform: 'linux' });
    expect(reg.metadata?.system_info).toBeDefined();
  });
});

describe('AipDeviceClient tasks', () => {
  it('requestTask resolves on the ACK and waitTaskEnd on a task_end sent in the same burst', async () => {
    const { c, srv } = await device({ platform: 'windows' });
    srv.onMessage = (conn, m) => {
      if (m.type !== 'task') return;
      conn.send({ type: 'heartbeat', status: 'ok', session_id: 'sid-1', response_id: 'ack' });
      conn.send({
        type: 'task_end',
        status: 'completed',
        session_id: 'sid-1',
        result: { done: true },
        response_id: 'e',
      });
    };
    const ack = await c.requestTask({ request: 'open notepad', taskName: 'np' });
    expect(ack).toEqual({ sessionId: 'sid-1' });
    const end = await c.waitTaskEnd('sid-1', 2000);
    expect(end.status).toBe('completed');
    expect(end.result).toEqual({ done: true });
    const { msg } = await srv.next((m) => m.type === 'task');
    expect(msg).toMatchObject({
      client_type: 'device',
      client_id: 'dev1',
      request: 'open notepad',
      task_name: 'np',
      session_id: null,
    });
    expect(msg.metadata).toEqual({ platform: 'windows' });
  });

  it('requestTask rejects with the text of an error reply', async () => {
    const { c, srv } = await device();
    srv.onMessage = (conn, m) => {
      if (m.type === 'task')
        conn.send({ type: 'error', status: 'error', error: "session_id 'x' is owned by another client" });
    };
    await expect(c.requestTask({ request: 'r', sessionId: 'x' })).rejects.toThrow(
      "session_id 'x' is owned by another client",
    );
  });

  it('turns a server-pushed task into its own task request by default', async () => {
    const { srv, conn } = await device();
    conn.send({
      type: 'task',
      status: 'continue',
      user_request: 'Open Notepad',
      task_name: 'notepad_task',
      session_id: 'A',
    });
    const { msg } = await srv.next((m) => m.type === 'task');
    expect(msg).toMatchObject({ request: 'Open Notepad', task_name: 'notepad_task', session_id: null });
  });

  it('hands a pushed task to onTask when given', async () => {
    const got: ServerMessage[] = [];
    const { c, conn } = await device({ onTask: (m) => got.push(m) });
    const frame = new Promise<ServerMessage>((resolve) =>
      c.on('frame', (m) => m.type === 'task' && resolve(m)),
    );
    conn.send({ type: 'task', status: 'continue', user_request: 'x', task_name: 't', session_id: 'A' });
    await frame;
    expect(got.map((m) => m.user_request)).toEqual(['x']);
  });
});
