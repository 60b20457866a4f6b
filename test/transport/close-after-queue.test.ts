/**
 * A close asked for while frames wait in a connection's outbound queue (the socket is backpressured) does not lose
 * them: they go out first, then the close frame (real uWS on port 0, a `ws` client that stops reading for a while).
 * And a peer that never reads again is still terminated, after the slow-consumer timeout. The slow-consumer hard
 * cap against one large frame: a frame as large as a client may send, relayed whole to a reader that keeps up, does
 * not close it at once as "far over budget", while a flood past the cap from many small frames still does.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { silentLogger } from '../../src/logger.js';
import type { Connection, SocketHandler } from '../../src/transport/connection.js';
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

let transport: Transport | null = null;
const clients: WebSocket[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.terminate();
  transport?.closeAll();
  transport = null;
});

/** A uWS transport on port 0 with `limits`, whose WebSocket connections get `handler`; resolves its port. */
async function serve(limits: TransportLimits, handler: (conn: Connection) => SocketHandler): Promise<number> {
  transport = await startUwsTransport({
    host: '127.0.0.1',
    port: 0,
    limits,
    log: silentLogger(),
    acceptUpgrade: () => ({ accept: true, protocol: null }),
    onConnection: handler,
    http: {
      head: () => ({ status: 404, headers: {}, body: '' }),
      streamsBody: () => false,
      handle: () => ({ status: 404, headers: {}, body: '' }),
    },
  });
  return transport.port;
}

async function connect(port: number, maxPayload?: number): Promise<{ ws: WebSocket; socket: Socket }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, maxPayload ? { maxPayload } : {});
  clients.push(ws);
  await new Promise((r, j) => ws.once('open', r).once('error', j));
  return { ws, socket: (ws as unknown as { _socket: Socket })._socket };
}

describe('closing a backpressured connection', () => {
  /** A server that, on the client's first message, sends FRAMES frames and then closes with 4000. */
  const start = (seen: { queuedAtClose: number; closedCode: number | null }): Promise<number> =>
    serve(limits, (conn) => ({
      message: () => {
        for (let i = 0; i < FRAMES; i++) conn.send(Buffer.alloc(FRAME, i % 256), true);
        seen.queuedAtClose = conn.bufferedBytes();
        conn.close(4000, 'done');
      },
      closed: (code) => {
        seen.closedCode = code;
      },
    }));

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

describe('the hard cap and one large frame', () => {
  const MIB = 1024 * 1024;
  const big: TransportLimits = {
    ...limits,
    maxPayloadBytes: 32 * MIB,
    outboundBudgetBytes: MIB, // hard cap 4 MiB by the factor, 33 MiB by the largest frame
    slowConsumerTimeoutMs: 10_000,
  };
  /** Answers a message `n` with one frame of n bytes, and `many n` with n frames of 64 KiB. */
  const start = (closed: number[]): Promise<number> =>
    serve(big, (conn) => ({
      message: (data) => {
        const text = Buffer.from(data as Uint8Array).toString();
        if (text.startsWith('many '))
          for (let i = 0; i < Number(text.slice(5)); i++) conn.send(Buffer.alloc(64 * 1024, 1), true);
        else conn.send(Buffer.alloc(Number(text), 7), true);
      },
      closed: (code) => void closed.push(code),
    }));

  it('delivers a 24 MiB frame (over 4 × the budget, under the largest payload) and keeps the connection', async () => {
    const closed: number[] = [];
    const { ws } = await connect(await start(closed), 64 * MIB);
    const got = new Promise<Buffer>((r) => ws.once('message', (d: Buffer) => r(d)));
    ws.send(String(24 * MIB));
    const frame = await got;
    expect(frame.byteLength).toBe(24 * MIB);
    expect(frame.every((b) => b === 7)).toBe(true);
    // still open: a second exchange works
    const again = new Promise<Buffer>((r) => ws.once('message', (d: Buffer) => r(d)));
    ws.send('10');
    expect((await again).byteLength).toBe(10);
    expect(closed).toEqual([]);
  });

  it('still closes at once a reader that stops while more than the hard cap piles up', async () => {
    const closed: number[] = [];
    const { ws, socket } = await connect(await start(closed), 64 * MIB);
    const code = new Promise<number>((r) => ws.once('close', (c) => r(c)));
    socket.pause();
    ws.send('many 800'); // 50 MiB in 64 KiB frames: past 33 MiB long before the 10 s clock
    const t0 = Date.now();
    while (closed.length === 0 && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 20));
    expect(closed[0]).toBe(4008); // (uWS reports the close too: handlers get it twice, and ignore the second)
    expect(Date.now() - t0).toBeLessThan(5_000);
    socket.resume();
    await code;
  });
});
