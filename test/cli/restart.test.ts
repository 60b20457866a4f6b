/**
 * One server per port, and instant restart (real processes): a second `aipd serve` on a busy port exits 2 with a
 * clear message; a server killed (SIGKILL or SIGTERM) with 20 clients connected is restarted on the same port,
 * explicit or picked by `--port 0`, and its first attempt to listen succeeds. A client that stopped reading does
 * not hold a SIGTERM'd server past its shutdown grace.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  aipdProcess,
  collect,
  serveProcess,
  waitForLine,
  type ServedProcess,
} from '../helpers/cli-process.js';
import { RawClient } from '../helpers/raw-client.js';
import { freePort } from '../../src/transport/listen.js';

const KEY = 'restart-test-key';
const procs: ChildProcessWithoutNullStreams[] = [];
const clients: RawClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

function serve(port: number): Promise<ServedProcess> {
  return serveProcess(port, KEY, { track: procs });
}

async function connectClients(port: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const c = await RawClient.connect(`ws://127.0.0.1:${port}/ws?token=${KEY}`);
    clients.push(c);
    await c.register(`dev-${i}`);
  }
}

describe('one server per port', () => {
  it('refuses a second server on a busy port with exit code 2 and a one-line reason', async () => {
    const first = await serve(0);
    const second = aipdProcess(['serve', '--port', String(first.port), '--api-key', KEY]);
    procs.push(second);
    const io = collect(second);
    expect(await io.exit).toBe(2);
    expect(io.err().trim()).toBe(
      `aipd: port ${first.port} on 127.0.0.1 is already in use (is another aipd running?)`,
    );
    expect(io.out()).not.toContain('listening');
    // The first server still serves.
    await connectClients(first.port, 1);
  });
});

describe('one server per data dir', () => {
  it('refuses a second server on the same --data-dir with exit code 2, before touching its sessions', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'aipd-lock-'));
    try {
      const env = { AIPD_STORE: 'sqlite', AIPD_DATA_DIR: dataDir };
      const first = aipdProcess(['serve', '--port', '0', '--api-key', KEY, '--log-level', 'warn'], env);
      procs.push(first);
      await waitForLine(collect(first).out, /listening on/);
      const second = aipdProcess(['serve', '--port', '0', '--api-key', KEY], env);
      procs.push(second);
      const io = collect(second);
      expect(await io.exit).toBe(2);
      expect(io.err().trim()).toMatch(
        /^aipd: --data-dir: '.*' is in use by another aipd \(pid \d+\); give each server its own data dir$/,
      );
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('instant restart on the same port', () => {
  for (const picked of ['explicit', 'port 0'] as const) {
    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      it(`${picked}, after ${signal} with 20 clients connected: the first attempt listens`, async () => {
        const first = await serve(picked === 'explicit' ? await freePort('127.0.0.1') : 0);
        await connectClients(first.port, 20);
        first.proc.kill(signal);
        await first.io.exit;
        const second = await serve(first.port);
        expect(second.port).toBe(first.port);
        expect(second.io.err()).not.toMatch(/in use|cannot listen/);
        await connectClients(second.port, 1);
      });
    }
  }
});

describe('shutdown with a client that stopped reading', () => {
  it('SIGTERM exits within twice --shutdown-grace-ms, not after uWS holds the unanswered close (15 s)', async () => {
    const served = await serveProcess(0, KEY, { track: procs, extra: ['--shutdown-grace-ms', '500'] });
    const c = await RawClient.connect(`ws://127.0.0.1:${served.port}/ws?token=${KEY}`);
    await c.register('stopped-reading');
    (c.ws as unknown as { _socket: Socket })._socket.pause();
    const t0 = Date.now();
    served.proc.kill('SIGTERM');
    try {
      expect(await served.exit).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      c.ws.terminate(); // it never reads the close: no handshake to wait for
    }
  });
});
