/**
 * A client that never reads is closed with CloseCode.SLOW_CONSUMER once its outbound queue has stayed over
 * budget for the slow-consumer timeout; its task ends `failed` for the other party, and the server keeps
 * serving everyone else meanwhile. Nothing queued for it is silently dropped before that.
 */
import type { Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CloseCode } from '../../protocol/index.js';
import { planRequest, startTestServer } from '../helpers/aip-server.js';
import { RawClient } from '../helpers/raw-client.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

describe('slow consumers', () => {
  let server: Server;
  const clients: RawClient[] = [];
  beforeEach(async () => {
    server = await startTestServer({
      outboundBudgetBytes: 256 * 1024,
      slowConsumerTimeoutMs: 1500,
      commandTimeoutMs: 60_000,
    });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await server.close();
  });

  it('closes a client that never reads with 4008 and fails its task for the requester, staying responsive', async () => {
    const d = await RawClient.connect(server.url);
    const k = await RawClient.connect(server.url);
    const other = await RawClient.connect(server.url);
    clients.push(d, k, other);
    await d.register('slow-dev', { metadata: { platform: 'linux' } });
    await k.register('k@slow-dev', { client_type: 'constellation', target_id: 'slow-dev' });
    await other.register('healthy');
    k.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      target_id: 'slow-dev',
      request: planRequest(3),
      session_id: 'k@slow',
    });
    await d.next((m) => m.type === 'command', 5000, 0);

    // The device stops reading from its socket but keeps sending: heartbeat replies pile up server-side,
    // until its outbound queue is over budget (but under the 4x hard cap).
    (d.ws as unknown as { _socket: Socket })._socket.pause();
    const slowConn = server.registry.get('slow-dev')!.conn;
    while (slowConn.bufferedBytes() < 384 * 1024) {
      for (let i = 0; i < 200; i++) d.send({ type: 'heartbeat', status: 'ok' });
      await new Promise((r) => setTimeout(r, 5));
    }
    const overAt = Date.now();
    // Meanwhile the server answers the healthy client promptly.
    let roundTrips = 0;
    while (server.registry.get('slow-dev') && Date.now() - overAt < 10_000) {
      other.send({ type: 'heartbeat', status: 'ok' });
      await other.next((m) => m.type === 'heartbeat', 2000);
      roundTrips++;
      await new Promise((r) => setTimeout(r, 20));
    }
    const closedAfter = Date.now() - overAt;
    expect(roundTrips).toBeGreaterThan(5);
    expect(closedAfter).toBeGreaterThanOrEqual(1000);
    expect(closedAfter).toBeLessThan(5000);
    expect(server.registry.get('slow-dev')).toBeUndefined();
    const end = await k.next((m) => m.type === 'task_end', 5000, 0);
    expect(end).toMatchObject({
      status: 'failed',
      session_id: 'k@slow',
      error: "Task was cancelled because client 'slow-dev' could not keep up (slow consumer)",
    });
    (d.ws as unknown as { _socket: Socket })._socket.resume();
    expect(await d.waitClose(10_000)).toBe(CloseCode.SLOW_CONSUMER);
    expect(server.tasks.live.size).toBe(0);
  }, 30_000);
});

describe('slow consumers far over budget', () => {
  it('closes at once a client whose queue passes four times its budget', async () => {
    // The hard cap is never below the largest frame a client may send plus the budget: small frames here.
    const server = await startTestServer({
      outboundBudgetBytes: 64 * 1024,
      maxPayloadBytes: 64 * 1024,
      slowConsumerTimeoutMs: 60_000,
    });
    const d = await RawClient.connect(server.url);
    try {
      await d.register('flooder');
      (d.ws as unknown as { _socket: Socket })._socket.pause();
      const t0 = Date.now();
      while (server.registry.get('flooder') && Date.now() - t0 < 10_000) {
        for (let i = 0; i < 500; i++) d.send({ type: 'heartbeat', status: 'ok' });
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(server.registry.get('flooder')).toBeUndefined();
      expect(Date.now() - t0).toBeLessThan(10_000);
      (d.ws as unknown as { _socket: Socket })._socket.resume();
      expect(await d.waitClose(10_000)).toBe(CloseCode.SLOW_CONSUMER);
    } finally {
      d.ws.terminate();
      await server.close();
    }
  }, 30_000);
});
