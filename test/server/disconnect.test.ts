import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { planRequest, startTestServer } from '../helpers/aip-server.js';
import { RawClient, type Codec } from '../helpers/raw-client.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

describe.each<Codec>(['json', 'msgpack'])('disconnects over %s (ufo-aip.md §8.4, Q4)', (codec) => {
  let server: Server;
  const clients: RawClient[] = [];
  const connect = async () => {
    const c = await RawClient.connect(server.url, codec);
    clients.push(c);
    return c;
  };
  beforeEach(async () => {
    // A long command timeout: only the disconnect can end these tasks quickly.
    server = await startTestServer({ commandTimeoutMs: 600_000 });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await server.close();
  });

  it('fails a constellation task within 1 s when its device disconnects mid-task', async () => {
    const d = await connect();
    await d.register('dev-1', { metadata: { platform: 'linux' } });
    const k = await connect();
    await k.register('k@dev-1', { client_type: 'constellation', target_id: 'dev-1' });
    k.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      target_id: 'dev-1',
      request: planRequest(5),
      session_id: 'k@t1',
    });
    await d.next((m) => m.type === 'command', 5000, 0);
    const t0 = Date.now();
    d.ws.terminate();
    const end = await k.next((m) => m.type === 'task_end', 1000);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(end).toMatchObject({
      status: 'failed',
      session_id: 'k@t1',
      error: 'Task was cancelled because target device disconnected',
    });
    expect(server.tasks.live.size).toBe(0);
    expect(server.registry.get('dev-1')).toBeUndefined();
  });

  it("cancels a device's own tasks when it disconnects, failing the pending command at once", async () => {
    const d = await connect();
    const taskNames: string[] = [];
    server.events.on('session.created', (e) => taskNames.push(e.taskName));
    await d.register('dev-1', { metadata: { platform: 'linux' } });
    d.send({ type: 'task', status: 'continue', request: planRequest(3) });
    await d.next((m) => m.type === 'command');
    expect(server.tasks.live.size).toBe(1);
    await d.close();
    await waitFor(() => server.tasks.live.size === 0);
    const sid = d.ofType('heartbeat').find((m) => m.session_id)!.session_id!;
    expect(await server.results.get(taskNames[0]!)).toMatchObject({
      session_id: sid,
      status: 'done',
      task_status: 'failed',
      error: 'Task was cancelled because target device disconnected',
    });
  });

  it('cancels the sessions of a constellation that disconnects and tells the executing device', async () => {
    const d = await connect();
    await d.register('dev-1', { metadata: { platform: 'linux' } });
    const k = await connect();
    await k.register('k@dev-1', { client_type: 'constellation', target_id: 'dev-1' });
    k.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      target_id: 'dev-1',
      request: planRequest(5),
      session_id: 'k@t2',
    });
    await d.next((m) => m.type === 'command', 5000, 0);
    await k.close();
    const end = await d.next((m) => m.type === 'task_end', 1000, 0);
    expect(end).toMatchObject({
      status: 'failed',
      session_id: 'k@t2',
      error: 'Task was cancelled because the requesting client disconnected',
    });
    expect(server.tasks.live.size).toBe(0);
    // The device is still registered and usable.
    d.send({ type: 'heartbeat', status: 'ok' });
    expect(await d.next()).toMatchObject({ type: 'heartbeat', status: 'ok' });
  });
});

describe('shutdown', () => {
  it('ends running tasks with task_end failed and closes sockets with 1001', async () => {
    const server = await startTestServer({ commandTimeoutMs: 600_000 });
    const d = await RawClient.connect(server.url);
    await d.register('dev-1', { metadata: { platform: 'windows' } });
    const k = await RawClient.connect(server.url);
    await k.register('k@dev-1', { client_type: 'constellation', target_id: 'dev-1' });
    k.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      target_id: 'dev-1',
      request: planRequest(3),
      session_id: 'k@t3',
    });
    await d.next((m) => m.type === 'command', 5000, 0);
    await server.close();
    for (const c of [k, d]) {
      expect(await c.waitClose()).toBe(1001);
      const end = c.ofType('task_end')[0];
      expect(end).toMatchObject({
        status: 'failed',
        session_id: 'k@t3',
        error: 'Task was cancelled because the server is shutting down',
      });
    }
    await expect(RawClient.connect(server.url)).rejects.toThrow();
  });
});

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
}
