/** The client against the real aipd server (startServer on port 0): device + controller, a plan task, device info. */
import { afterEach, describe, expect, it } from 'vitest';
import { AipControllerClient, AipDeviceClient } from '../../src/client/index.js';
import { startServer, type RunningServer } from '../../src/app/server.js';

let server: RunningServer | null = null;
const clients: (AipDeviceClient | AipControllerClient)[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server?.close();
  server = null;
});

describe.each(['json', 'msgpack'] as const)('client against aipd (%s)', (codec) => {
  it('runs a plan task from a controller on a device and reads device info', async () => {
    server = await startServer({ port: 0, apiKey: 'k3y', logLevel: 'silent', store: 'memory' });
    const url = `ws://127.0.0.1:${server.port}/ws`;
    const calls: string[] = [];
    const dev = new AipDeviceClient({
      url,
      token: 'k3y',
      clientId: 'dev1',
      codec,
      reconnect: false,
      systemInfo: { device_id: 'dev1', cpu_count: 3 },
      onCommand: (cmd) =>
        (cmd.actions ?? []).map(
          (a) => (calls.push(a.tool_name), { status: 'success' as const, result: `did ${a.tool_name}` }),
        ),
    });
    clients.push(dev);
    await dev.connect();
    const ctl = new AipControllerClient({
      url,
      token: 'k3y',
      clientId: 'k@dev1',
      targetId: 'dev1',
      codec,
      reconnect: false,
    });
    clients.push(ctl);
    await ctl.connect();

    const info = await ctl.deviceInfo();
    expect(info).toMatchObject({ device_id: 'dev1', cpu_count: 3 });

    const plan = {
      task: 'demo',
      steps: [{ actions: [{ tool_name: 'type_text', tool_type: 'action', call_id: 'c1' }] }],
    };
    const end = await ctl.runTask({ request: JSON.stringify(plan), sessionId: 'k@t1', timeoutMs: 10_000 });
    expect(end).toMatchObject({ type: 'task_end', status: 'completed', session_id: 'k@t1' });
    expect(calls).toEqual(['type_text']);

    // Refused by the server (which text depends on its target policy), delivered as a rejection.
    await expect(ctl.runTask({ request: 'x', targetId: 'nobody' })).rejects.toThrow(
      /not connected|Not authorized/,
    );
    expect(ctl.connected).toBe(true);
  });
});
