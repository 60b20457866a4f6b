/**
 * Stream and SSM sockets before their token (real uWS on port 0, raw TCP): they are unauthenticated, so what one
 * may make the server hold is bounded: a frame over the path's limit closes the socket at once (not after the token
 * wait), and at most --max-stream-token-waits of them wait at a time.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { Peer } from '../helpers/ws-peer.js';
import { api, until } from './helpers.js';

let server: Awaited<ReturnType<typeof startTestServer>>;
let device: Peer;
/** A live Standard_Stream session (its device says it serves streams; it never has to open one here). */
let sid: string;
const TOKEN_WAIT_MS = 8_000;

beforeAll(async () => {
  server = await startTestServer({ streamTokenWaitMs: TOKEN_WAIT_MS, maxStreamTokenWaits: 2 });
  device = await Peer.connect(server.url);
  device.send({
    type: 'register',
    status: 'ok',
    client_id: 'preauth-dev',
    metadata: {
      platform: 'linux',
      aipd_device: { version: 1, channels: ['stream'], exec: true, pty: true, root: false, ports: [] },
    },
  });
  await until(() => server.registry.get('preauth-dev') !== undefined, 'the device registered');
  const r = await api(`http://127.0.0.1:${server.port}`, TEST_KEY).call('POST', '/sessions', {
    agent_id: 'preauth-dev',
    session_type: 'Standard_Stream',
  });
  expect(r.status, r.text).toBe(201);
  sid = r.json.id as string;
});
afterAll(async () => {
  device?.ws.close();
  await server?.close();
});

/** A raw WebSocket upgrade on `path`; resolves the socket and the status line of the answer. */
async function upgrade(path: string): Promise<{ sock: net.Socket; status: string }> {
  const sock = net.connect(server.port, '127.0.0.1');
  sock.on('error', () => undefined);
  await new Promise((r) => sock.once('connect', r));
  sock.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  let head = '';
  await new Promise<void>((resolve) => {
    const onData = (b: Buffer): void => {
      head += b.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      sock.off('data', onData);
      resolve();
    };
    sock.on('data', onData);
  });
  return { sock, status: head.slice(0, head.indexOf('\r\n')) };
}

/** The head of a masked binary frame announcing `length` payload bytes. */
function frameHead(length: number): Buffer {
  const h = Buffer.alloc(14);
  h[0] = 0x82;
  h[1] = 0x80 | 127;
  h.writeBigUInt64BE(BigInt(length), 2);
  return h; // mask key 0
}

const closed = (sock: net.Socket): Promise<void> =>
  new Promise((r) => (sock.destroyed ? r() : sock.once('close', () => r())));

describe('stream sockets before their token', () => {
  it('refuses a socket for a session that is not live here, so none takes a place among those waiting', async () => {
    for (const path of ['/sessions/no-such-session/stream', '/sessions/no-such-session/ssm']) {
      const { sock, status } = await upgrade(path);
      expect(status).toBe('HTTP/1.1 404 Not Found');
      sock.destroy();
    }
  });

  for (const kind of ['stream', 'ssm']) {
    it(`closes a ${kind} socket at once on a frame announced larger than the path takes`, async () => {
      const { sock, status } = await upgrade(`/sessions/${sid}/${kind}`);
      expect(status).toBe('HTTP/1.1 101 Switching Protocols');
      const start = performance.now();
      sock.write(frameHead(120 * 1024 * 1024));
      sock.write(Buffer.alloc(64 * 1024));
      await closed(sock);
      // Not held until the token wait ends: the socket layer refused the frame by its announced length.
      expect(performance.now() - start).toBeLessThan(TOKEN_WAIT_MS / 2);
    });
  }

  it('lets at most --max-stream-token-waits sockets wait for their token, and another once one has gone', async () => {
    const a = await upgrade(`/sessions/${sid}/stream`);
    const b = await upgrade(`/sessions/${sid}/ssm`);
    expect([a.status, b.status]).toEqual([
      'HTTP/1.1 101 Switching Protocols',
      'HTTP/1.1 101 Switching Protocols',
    ]);
    const c = await upgrade(`/sessions/${sid}/stream`);
    expect(c.status).toBe('HTTP/1.1 503 Service Unavailable');
    c.sock.destroy();
    a.sock.destroy();
    let d = await upgrade(`/sessions/${sid}/stream`);
    for (let i = 0; i < 50 && d.status !== 'HTTP/1.1 101 Switching Protocols'; i++) {
      d.sock.destroy();
      await new Promise((r) => setTimeout(r, 20));
      d = await upgrade(`/sessions/${sid}/stream`);
    }
    expect(d.status).toBe('HTTP/1.1 101 Switching Protocols');
    b.sock.destroy();
    d.sock.destroy();
  });
});
