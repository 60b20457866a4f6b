import { afterEach, describe, expect, it } from 'vitest';
import { AipControllerClient } from '../../src/client/index.js';
import { MockAipServer } from './mock-server.js';

let server: MockAipServer | null = null;
const clients: AipControllerClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server?.close();
  server = null;
});

async function controller() {
  server = await MockAipServer.start();
  const c = new AipControllerClient({
    url: server.url,
    token: 'secret',
    clientId: 'k@dev1',
    targetId: 'dev1',
    reconnect: false,
  });
  clients.push(c);
  await c.connect();
  return { c, srv: server };
}

describe('AipControllerClient', () => {
  it('registers as a constellation with target_id and Galaxy-style metadata', async () => {
    const { srv } = await controller();
    expect(srv.registrations[0]).toMatchObject({
      type: 'register',
      client_type: 'constellation',
      client_id: 'k@dev1',
      target_id: 'dev1',
    });
    expect(srv.registrations[0]!.metadata).toMatchObject({
      type: 'constellation_client',
      task_name: 'k',
      targeted_device_id: 'dev1',
    });
  });

  it('runTask sends task for the target and resolves with task_end after the ACK', async () => {
    const { c, srv } = await controller();
    srv.onMessage = (conn, m) => {
      if (m.type !== 'task') return;
      conn.send({ type: 'heartbeat', status: 'ok', session_id: m.session_id, response_id: 'ack' });
      setTimeout(
        () => conn.send({ type: 'task_end', status: 'failed', session_id: m.session_id, error: 'it broke' }),
        10,
      );
    };
    const end = await c.runTask({ request: 'summarize', sessionId: 'k@t1', taskName: 'galaxy/k/t1' });
    expect(end).toMatchObject({ type: 'task_end', status: 'failed', session_id: 'k@t1', error: 'it broke' });
    const { msg } = await srv.next((m) => m.type === 'task');
    expect(msg).toMatchObject({
      client_type: 'constellation',
      target_id: 'dev1',
      session_id: 'k@t1',
      request: 'summarize',
    });
  });

  it('runTask rejects on an error reply', async () => {
    const { c, srv } = await controller();
    srv.onMessage = (conn, m) => {
      if (m.type === 'task')
        conn.send({ type: 'error', status: 'error', error: "Target device 'dev9' is not connected" });
    };
    await expect(c.runTask({ request: 'x', targetId: 'dev9' })).rejects.toThrow(
      "Target device 'dev9' is not connected",
    );
  });

  it('matches concurrent tasks to their own ACKs and task_end frames', async () => {
    const { c, srv } = await controller();
    srv.onMessage = (conn, m) => {
      if (m.type !== 'task') return;
      conn.send({ type: 'heartbeat', status: 'ok', session_id: m.session_id });
      const delay = m.session_id === 'k@1' ? 40 : 5;
      setTimeout(
        () =>
          conn.send({ type: 'task_end', status: 'completed', session_id: m.session_id, result: m.request }),
        delay,
      );
    };
    const [a, b] = await Promise.all([
      c.runTask({ request: 'one', sessionId: 'k@1' }),
      c.runTask({ request: 'two', sessionId: 'k@2' }),
    ]);
    expect(a.result).toBe('one');
    expect(b.result).toBe('two');
  });

  it('deviceInfo sends device_info_request and resolves with the result object', async () => {
    const { c, srv } = await controller();
    srv.onMessage = (conn, m) => {
      if (m.type === 'device_info_request')
        conn.send({
          type: 'device_info_response',
          status: 'ok',
          response_id: m.request_id,
          result: { device_id: m.target_id, cpu_count: 4 },
        });
    };
    const info = await c.deviceInfo();
    expect(info).toEqual({ device_id: 'dev1', cpu_count: 4 });
    const { msg } = await srv.next((m) => m.type === 'device_info_request');
    expect(msg.request_id).toMatch(/^device_info_dev1_\d+\.\d+$/);
  });

  it('deviceInfo rejects on an error reply', async () => {
    const { c, srv } = await controller();
    srv.onMessage = (conn, m) => {
      if (m.type === 'device_info_request')
        conn.send({
          type: 'error',
          status: 'error',
          error: 'Not authorized to request device info for this device',
        });
    };
    await expect(c.deviceInfo('other')).rejects.toThrow(
      'Not authorized to request device info for this device',
    );
  });
});
