/**
 * The memory transport itself behaves like a socket: frames cross asynchronously and in order, in both
 * directions, closes come after the frames sent before them, limits apply, and nothing is ever lost.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CloseCode } from '../../protocol/index.js';
import { settle, startMemoryServer, waitFor, type MemoryHarness } from './harness.js';

describe('memory transport fidelity', () => {
  let h: MemoryHarness;
  afterEach(async () => {
    await h.close();
  });

  it('opens no socket, and delivers frames asynchronously, never inside send()', async () => {
    h = await startMemoryServer();
    expect(h.server.port).toBe(0);
    expect(h.server.memory).not.toBeNull();
    const c = h.connect();
    expect([...h.memory.connections()]).toHaveLength(1);
    c.send({ type: 'register', status: 'ok', client_id: 'async' });
    expect(h.server.registry.list()).toEqual([]);
    expect(c.frames).toHaveLength(0);
    await c.next();
    expect(h.server.registry.list()).toEqual(['async']);
    c.close();
    await waitFor(() => [...h.memory.connections()].length === 0);
    expect(await c.waitClose()).toBe(1000);
  });

  it('closes with 1009 a frame over maxPayloadBytes, before decoding it', async () => {
    h = await startMemoryServer({ maxPayloadBytes: 1024 });
    const c = h.connect();
    c.sendText(
      JSON.stringify({
        type: 'register',
        status: 'ok',
        client_id: 'big',
        metadata: { pad: 'x'.repeat(2000) },
      }),
    );
    expect(await c.waitClose()).toBe(CloseCode.MESSAGE_TOO_BIG);
    expect(c.closeReason).toBe('frame too large');
    expect(c.frames).toHaveLength(0);
    expect(h.server.registry.list()).toEqual([]);
  });

  it('closes with 1007 a text frame that is not UTF-8 (uWS itself drops such a frame on a real socket), and answers a binary one', async () => {
    h = await startMemoryServer();
    const d = await h.device('utf-dev');
    const bad = new Uint8Array([
      ...new TextEncoder().encode('{"type":"heartbeat","status":"ok","x":"'),
      0xc3,
      0x28,
      0x22,
      0x7d,
    ]);
    d.socket.send(bad, true);
    await d.next((m) => m.type === 'error', 500, 0);
    expect(d.ofType('error').map((m) => m.error)).toEqual(['Frame is not valid UTF-8']);
    d.socket.send(bad, false);
    expect(await d.waitClose()).toBe(CloseCode.INVALID_PAYLOAD);
    expect(d.closeReason).toBe('Frame is not valid UTF-8');
  });

  it('delivers every frame when one tick sends more than the high-water mark (nothing stalls in the queue)', async () => {
    h = await startMemoryServer({ highWaterMarkBytes: 256 });
    const d = await h.device('dev-1');
    const big = 'y'.repeat(1000);
    // Both dispatches send their task frame in the same tick: the second finds the first still in flight.
    const [r1, r2] = await Promise.all([
      h.api('POST', '/api/dispatch', { body: { client_id: 'dev-1', request: big, task_name: 't1' } }),
      h.api('POST', '/api/dispatch', { body: { client_id: 'dev-1', request: big, task_name: 't2' } }),
    ]);
    expect([r1.status, r2.status]).toEqual([200, 200]);
    await d.next((m) => m.type === 'task' && m.task_name === 't2', 500, 0);
    expect(d.ofType('task').map((m) => m.task_name)).toEqual(['t1', 't2']);
    expect(h.server.registry.get('dev-1')?.conn.bufferedBytes()).toBe(0);
  });

  it('delivers frames a client sent before closing, then the close', async () => {
    h = await startMemoryServer();
    const seen: string[] = [];
    h.server.events.on('results.received', (e) => seen.push(`results:${e.responseId}`));
    h.server.events.on('client.gone', (e) => seen.push(`gone:${e.code}`));
    const d = await h.device('dev-1');
    d.send({
      type: 'task',
      status: 'continue',
      request: JSON.stringify({ steps: [{ actions: [{ tool_name: 't', tool_type: 'action' }] }] }),
    });
    const cmd = await d.next((m) => m.type === 'command');
    d.send({
      type: 'command_results',
      status: 'continue',
      session_id: cmd.session_id,
      prev_response_id: cmd.response_id,
      action_results: [{ status: 'success', result: 'r' }],
    });
    d.close(1000, 'bye');
    await waitFor(() => seen.some((s) => s.startsWith('gone')));
    expect(seen).toEqual([`results:${cmd.response_id}`, 'gone:1000']);
  });

  it('shows a session as running once its first command has crossed and the store writes settle', async () => {
    h = await startMemoryServer();
    const d = await h.device('dev-1');
    d.send({
      type: 'task',
      status: 'continue',
      request: JSON.stringify({ steps: [{ actions: [{ tool_name: 't', tool_type: 'action' }] }] }),
      session_id: 's',
    });
    await d.next((m) => m.type === 'command');
    await settle();
    expect((await h.api('GET', '/api/sessions/s')).json).toMatchObject({ session_id: 's', state: 'running' });
  });
});
