/**
 * The stream WebSocket's refusals, in process over the memory transport: a device that registers saying it serves
 * streams (it never has to open one), and a live Standard_Stream session whose socket is refused in each way.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/app/server.js';
import type { MemoryClientSocket, MemoryFrame } from '../../src/transport/memory.js';
import { silentLogger } from '../../src/logger.js';

let server: RunningServer;
/** A live Standard_Stream session's stream path. */
let live: string;

beforeEach(async () => {
  server = await startServer(
    { apiKey: 'k', store: 'memory', streamTokenWaitMs: 200, logLevel: 'silent' },
    { transport: 'memory', logger: silentLogger() },
  );
  const device = server.memory!.connect('token=k', null, '/ws');
  if ('refused' in device) throw new Error('device refused');
  const registered = new Promise<void>((r) => device.onFrame(() => r()));
  device.send(
    JSON.stringify({
      type: 'register',
      status: 'ok',
      client_id: 'stream-dev',
      metadata: {
        platform: 'linux',
        aipd_device: { version: 1, channels: ['stream'], exec: true, pty: true, root: false, ports: [] },
      },
    }),
  );
  await registered;
  const r = await server.memory!.inject({
    method: 'POST',
    url: '/sessions',
    headers: { 'x-api-key': 'k', 'content-type': 'application/json' },
    body: { agent_id: 'stream-dev', session_type: 'Standard_Stream' },
  });
  if (r.status !== 201) throw new Error(`session: ${r.status} ${JSON.stringify(r.json)}`);
  live = `/sessions/${(r.json as { id: string }).id}/stream`;
});
afterEach(() => server.close());

function open(path: string): { sock: MemoryClientSocket; frames: MemoryFrame[] } {
  const sock = server.memory!.connect('', 'aipd.stream.v1', path);
  if ('refused' in sock) throw new Error(`refused: ${JSON.stringify(sock.refused)}`);
  const frames: MemoryFrame[] = [];
  sock.onFrame((f) => frames.push(f));
  return { sock, frames };
}

const errorOf = (frames: MemoryFrame[]): unknown =>
  frames.filter((f) => !f.isBinary).map((f) => JSON.parse(String(f.data)) as Record<string, unknown>)[0];

describe('stream socket refusals', () => {
  it('closes 4011 when no token arrives in time', async () => {
    const { sock, frames } = open(live);
    expect((await sock.whenClosed()).code).toBe(4011);
    expect(errorOf(frames)).toMatchObject({ type: 'error', code: 6111 });
  });

  it('closes 4012 when the first frame is not a token message', async () => {
    const { sock } = open(live);
    sock.send(new Uint8Array([1, 2, 3]));
    expect((await sock.whenClosed()).code).toBe(4012);
  });

  it('closes 4010 for a token that was never issued', async () => {
    const { sock, frames } = open(live);
    sock.send(JSON.stringify({ token: 'abc.def' }));
    expect((await sock.whenClosed()).code).toBe(4010);
    expect(errorOf(frames)).toMatchObject({ code: 6110 });
  });

  it('refuses WebSockets on other paths and for sessions not live here, and /ws still needs the API key', () => {
    expect(server.memory!.connect('', null, '/sessions/s1/other')).toMatchObject({
      refused: { status: 404 },
    });
    for (const path of ['/sessions/no-such-session/stream', '/sessions/no-such-session/ssm'])
      expect(server.memory!.connect('', 'aipd.stream.v1', path)).toMatchObject({
        refused: { status: 404, body: 'No such live session on this node' },
      });
    expect(server.memory!.connect('', null, '/ws')).toMatchObject({ refused: { status: 403 } });
  });

  it('answers typed-session errors over inject: unknown device 404, bad parameters 422', async () => {
    const inject = (body: unknown) =>
      server.memory!.inject({
        method: 'POST',
        url: '/sessions',
        headers: { 'x-api-key': 'k', 'content-type': 'application/json' },
        body,
      });
    const unknown = await inject({ agent_id: 'nobody', session_type: 'Standard_Stream' });
    expect(unknown.status).toBe(404);
    const bad = await inject({
      agent_id: 'nobody',
      session_type: 'Port',
      parameters: { portNumber: ['99999'] },
    });
    expect(bad.status).toBe(422);
    expect((bad.json as { detail: string }).detail).toContain('parameters.portNumber');
    const notLive = await server.memory!.inject({
      method: 'POST',
      url: '/sessions/none/execute',
      headers: { 'x-api-key': 'k', 'content-type': 'application/json' },
      body: { mode: 'query', code: 'true' },
    });
    expect(notLive.status).toBe(404);
  });
});
