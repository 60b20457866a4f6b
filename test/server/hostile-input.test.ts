/**
 * Clear answers to hostile input, over real sockets: a frame over the limit closes with 1009 and the error text;
 * invalid UTF-8 in a binary JSON frame gets an error frame and the socket stays; HTTP answers 415 for a JSON route
 * with another content type, 414 for a long URL, 431 for too many or too large headers, and refuses an
 * unauthenticated request before its body is read.
 */
import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CloseCode } from '../../protocol/index.js';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { RawClient } from '../helpers/raw-client.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

interface Reply {
  status: number;
  body: string;
}

/** A raw HTTP request with exactly the given headers (fetch would add and normalise some). */
function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('hostile WebSocket frames', () => {
  let server: Server;
  const clients: RawClient[] = [];
  beforeEach(async () => {
    server = await startTestServer({ maxPayloadBytes: 64 * 1024 });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await server.close();
  });

  it('closes a frame over --max-payload-bytes with 1009, after an error frame with the text', async () => {
    const c = await RawClient.connect(server.url);
    clients.push(c);
    await c.register('big-dev');
    const frame = JSON.stringify({ type: 'heartbeat', status: 'ok', pad: 'x'.repeat(70 * 1024) });
    c.ws.send(frame);
    expect(await c.waitClose(5000)).toBe(CloseCode.MESSAGE_TOO_BIG);
    expect(c.ofType('error').map((m) => m.error)).toEqual([
      `Frame of ${frame.length} bytes exceeds the limit of ${64 * 1024} bytes`,
    ]);
    await new Promise((r) => setTimeout(r, 50));
    expect(server.registry.get('big-dev')).toBeUndefined();
  });

  it('refuses a 60,000-character client_id at registration, and a 300-character target_id in a task', async () => {
    const c = await RawClient.connect(server.url);
    clients.push(c);
    c.send({ type: 'register', status: 'ok', client_type: 'device', client_id: 'd'.repeat(60_000) });
    expect(await c.waitClose(5000)).toBe(CloseCode.REGISTRATION_FAILED);
    const [err] = c.ofType('error');
    expect(err?.error).toBe(
      'Registration failed: 1 validation error for ClientMessage\nclient_id\n  must be at most 256 characters',
    );
    expect(server.registry.list()).toEqual([]);

    const k = await RawClient.connect(server.url);
    clients.push(k);
    await k.register('k@long');
    k.send({
      type: 'task',
      status: 'continue',
      client_type: 'device',
      target_id: 't'.repeat(300),
      request: 'x',
    });
    const refused = await k.next((m) => m.type === 'error', 5000);
    expect(refused.error).toBe(
      '1 validation error for ClientMessage\ntarget_id\n  must be at most 256 characters',
    );
  });

  it('answers invalid UTF-8 in a binary JSON frame with an error frame and keeps the socket', async () => {
    const c = await RawClient.connect(server.url);
    clients.push(c);
    await c.register('utf-dev');
    const bad = Buffer.concat([
      Buffer.from('{"type":"heartbeat","status":"ok","x":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"}'),
    ]);
    c.ws.send(bad, { binary: true });
    const err = await c.next((m) => m.type === 'error', 5000);
    expect(err.error).toBe('Frame is not valid UTF-8');
    c.send({ type: 'heartbeat', status: 'ok' });
    expect(
      await c.next((m) => m.type === 'heartbeat' && m.status === 'ok', 5000, c.frames.length),
    ).toBeTruthy();
  });
});

describe('hostile HTTP requests', () => {
  let server: Server;
  beforeEach(async () => {
    server = await startTestServer({ maxUrlBytes: 2048, maxHeaderCount: 30, maxHeaderBytes: 4096 });
  });
  afterEach(async () => {
    await server.close();
  });
  const key = { 'x-api-key': TEST_KEY };

  it('answers 415 to a JSON route sent as text/plain, even when the text is JSON', async () => {
    const r = await send(
      server.port,
      'POST',
      '/api/dispatch',
      { ...key, 'content-type': 'text/plain' },
      JSON.stringify({ client_id: 'd', request: 'x' }),
    );
    expect(r).toEqual({
      status: 415,
      body: JSON.stringify({
        detail: "Unsupported media type: send the body as 'Content-Type: application/json'",
      }),
    });
    const ok = await send(
      server.port,
      'POST',
      '/api/dispatch',
      { ...key, 'content-type': 'application/json; charset=utf-8' },
      JSON.stringify({ client_id: 'd', request: 'x' }),
    );
    expect(ok.status).toBe(404); // accepted as JSON: the client is simply not online
  });

  it('answers 414 to a URL over the limit', async () => {
    const r = await send(server.port, 'GET', `/api/task_result/${'a'.repeat(4096)}`, key);
    expect(r.status).toBe(414);
    expect(JSON.parse(r.body)).toEqual({
      detail: 'URI too long: the path and query may be at most 2048 bytes',
    });
  });

  it('answers 431 to too many header fields and to header bytes over the limit', async () => {
    const many: Record<string, string> = { ...key };
    for (let i = 0; i < 35; i++) many[`x-h${i}`] = 'v';
    const r = await send(server.port, 'GET', '/api/clients', many);
    expect(r.status).toBe(431);
    expect(JSON.parse(r.body)).toEqual({
      detail: 'Request header fields too large: at most 30 fields and 4096 bytes',
    });
    const big = await send(server.port, 'GET', '/api/clients', { ...key, 'x-big': 'b'.repeat(5000) });
    expect(big.status).toBe(431);
  });

  it('refuses a request without a key before reading its body', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024, 0x61);
    const r = await send(
      server.port,
      'POST',
      '/api/dispatch',
      { 'content-type': 'application/json', 'content-length': String(body.length) },
      body,
    );
    expect(r.status).toBe(422);
    expect(JSON.parse(r.body).detail[0].loc).toEqual(['header', 'X-API-Key']);
  });

  it('caps body bytes in flight across connections with 503', async () => {
    const small = await startTestServer({
      maxHttpBodyBytes: 1024 * 1024,
      maxHttpBodyBytesInFlight: 1024 * 1024,
    });
    try {
      // Two bodies that each fit the per-request limit but not both at once: the second waits on a slow first.
      const slow = request({
        host: '127.0.0.1',
        port: small.port,
        method: 'POST',
        path: '/api/dispatch',
        headers: { ...key, 'content-type': 'application/json', 'content-length': String(1024 * 1024) },
      });
      slow.on('error', () => undefined);
      slow.write(Buffer.alloc(900 * 1024, 0x20));
      await new Promise((r) => setTimeout(r, 200));
      const r = await send(
        small.port,
        'POST',
        '/api/dispatch',
        { ...key, 'content-type': 'application/json' },
        Buffer.alloc(512 * 1024, 0x20),
      );
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body)).toEqual({
        detail: 'Server busy: too many request bodies in flight; retry shortly',
      });
      slow.destroy();
      await new Promise((r) => setTimeout(r, 200));
      const after = await send(
        small.port,
        'POST',
        '/api/dispatch',
        { ...key, 'content-type': 'application/json' },
        Buffer.from('{"client_id":"d","request":"x"}'),
      );
      expect(after.status).toBe(404); // the aborted body's bytes were given back
    } finally {
      await small.close();
    }
  });
});
