/**
 * A close asked for while frames wait in a connection's outbound queue (the socket is backpressured) does not lose
 * them: they go out first, then the close frame (real uWS on port 0, a `ws` client that stops reading for a while).
 * And a peer that never reads again is still terminated, after the slow-consumer timeout.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { silentLogger } from '../../src/logger.js';
import type { Connection } from '../../src/transport/connection.js';
import type { Transport, TransportLimits } from '../../src/transport/transport.js';
import { startUwsTransport } from '../../src/transport/uws.js';

const FRAME = 64 * 1024;
const FRAMES = 320; // 20 MiB: more than loopback socket buffers take, so frames wait in our queue

const limits: TransportLimits = {
  maxPayloadBytes: 1024 * 1024,
  idleTimeoutSec: 0,
  outboundBudgetBytes: 256 * 1024 * 1024,
  slowConsumerTimeoutMs: 1_000,
  slowConsumerHardCap: 4,
  highWaterMarkBytes: 64 * 1024,
  maxHttpBodyBytes: 1024,
  maxHttpBodyBytesInFlight: 1024,
};

describe('closing a backpressured connection', () => {
  let transport: Transport | null = null;
  const clients: WebSocket[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.terminate();
    transport?.closeAll();
    transport = null;
  });

  /** A server that, on the client's first message, sends FRAMES frames and then closes with 4000. */
  const start = async (seen: { queuedAtClose: number; closedCode: number | null }): Promise<number> => {
    transport = await startUwsTransport({
      host: '127.0.0.1',
      port: 0,
      limits,
      log: silentLogger(),
      acceptUpgrade: () => ({ accept: true, protocol: null }),
      onConnection: (conn: Connection) => ({
        message: () => {
          for (let i = 0; i < FRAMES; i++) conn.send(Buffer.alloc(FRAME, i % 256), true);
          seen.queuedAtClose = conn.bufferedBytes();
          conn.close(4000, 'done');
        },
        closed: (code) => {
          seen.closedCode = code;
        },
      }),
      http: {
        head: () => ({ status: 404, headers: {}, body: '' }),
        streamsBody: () => false,
        handle: () => ({ status: 404, headers: {}, body: '' }),
      },
    });
    return transport.port;
  };

  const connect = async (port: number): Promise<{ ws: WebSocket; socket: Socket }> => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    clients.push(ws);
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    return { ws, socket: (ws as unknown as { _socket: Socket })._socket };
  };

  it('sends every frame queued before the close, then the close frame', async () => {
    const seen = { queuedAtClose: 0, closedCode: null as number | null };
    const port = await start(seen);
    const { ws, socket } = await connect(port);
    const got: number[] = [];
    ws.on('message', (d: Buffer) => got.push(d[0]!));
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    socket.pause(); // stop reading: the server's socket backs up and frames wait in its queue
    ws.send('go');
    await new Promise((r) => setTimeout(r, 300));
    socket.resume();
    expect(await closed).toBe(4000);
    expect(seen.queuedAtClose).toBeGreaterThan(limits.highWaterMarkBytes);
    expect(got).toEqual(Array.from({ length: FRAMES }, (_, i) => i % 256));
    expect(seen.closedCode).not.toBeNull();
  });

  it('terminates a peer that never reads again, after the slow-consumer timeout', async () => {
    const seen = { queuedAtClose: 0, closedCode: null as number | null };
    const port = await start(seen);
    const { ws, socket } = await connect(port);
    socket.pause();
    ws.send('go');
    const end = Date.now() + limits.slowConsumerTimeoutMs + 5_000;
    while (seen.closedCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect(seen.queuedAtClose).toBeGreaterThan(limits.highWaterMarkBytes);
    expect(seen.closedCode).not.toBeNull();
  });
});
