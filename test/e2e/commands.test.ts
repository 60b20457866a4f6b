/**
 * Real work over channels through aipd, the device running the stock handlers (src/client/channels/device.ts):
 * - a `stream` channel runs `echo` and `cat` as real child processes and returns output and exit status;
 * - a `port` channel carries an HTTP request from the controller to an http server on the device side and back;
 * - `file` channels upload and download with SHA-256 checks, and a path escaping the file root is refused.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors } from '../../protocol/index.js';
import { openChannelStream, runCommand } from '../../src/client/channels/controller.js';
import { createDeviceChannelHandler } from '../../src/client/channels/device.js';
import { downloadFile, uploadFile } from '../../src/client/channels/file-client.js';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { livePair, type LivePair } from './helpers.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function collect(stream: NodeJS.ReadableStream): Promise<string> {
  let out = '';
  for await (const c of stream) out += typeof c === 'string' ? c : Buffer.from(c).toString('utf8');
  return out;
}

describe('shell, port forwarding and files through aipd', () => {
  let server: Server;
  let pair: LivePair;
  let web: http.Server;
  let root: string;
  let local: string;

  beforeAll(async () => {
    server = await startTestServer();
    root = mkdtempSync(join(tmpdir(), 'aipd-e2e-root-'));
    local = mkdtempSync(join(tmpdir(), 'aipd-e2e-local-'));
    web = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ method: req.method, url: req.url, body, via: 'device-local http' }));
      });
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    pair = await livePair({
      url: `ws://127.0.0.1:${server.port}/ws`,
      token: TEST_KEY,
      deviceId: 'cmd-dev',
      deviceOnOpen: createDeviceChannelHandler({ fileRoot: root, stream: {}, port: {} }),
    });
  });
  afterAll(async () => {
    await pair?.close();
    await server?.close();
    await new Promise<void>((r) => (web ? web.close(() => r()) : r()));
    for (const d of [root, local]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('runs echo on the device and returns its output and exit code', async () => {
    const { stream, exit } = await runCommand(pair.controllerMux, pair.sessionId, 'echo', {
      args: ['hello', 'from', 'the device'],
    });
    stream.end();
    const [out, status] = await Promise.all([collect(stream), exit]);
    expect(out).toBe('hello from the device\n');
    expect(status).toEqual({ exitCode: 0, signal: null });
  });

  it('pipes stdin through cat and back, and reports a failing command', async () => {
    const { stream, exit } = await runCommand(pair.controllerMux, pair.sessionId, 'cat');
    const input = Array.from({ length: 2000 }, (_, i) => `line ${i}`).join('\n');
    stream.end(input);
    expect(await collect(stream)).toBe(input);
    expect((await exit).exitCode).toBe(0);
    const failing = await runCommand(pair.controllerMux, pair.sessionId, 'exit 3', { shell: true });
    failing.stream.end();
    await collect(failing.stream);
    expect((await failing.exit).exitCode).toBe(3);
  });

  it('forwards an HTTP request to a port on the device side and returns the response', async () => {
    const port = (web.address() as AddressInfo).port;
    const duplex = await openChannelStream(pair.controllerMux, pair.sessionId, 'port', { port });
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        {
          method: 'POST',
          path: '/api/echo?x=1',
          headers: { host: 'device', 'content-type': 'text/plain' },
          createConnection: () => duplex,
        },
        (r) => {
          let body = '';
          r.on('data', (d: Buffer) => (body += d.toString()));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end('ping through aipd');
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({
      method: 'POST',
      url: '/api/echo?x=1',
      body: 'ping through aipd',
      via: 'device-local http',
    });
    duplex.destroy();
  });

  it('uploads and downloads a file with SHA-256, and refuses a path escaping the root', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 123);
    const src = join(local, 'up.bin');
    writeFileSync(src, data);
    const up = await uploadFile(pair.controllerMux, pair.sessionId, src, 'up.bin');
    expect(up).toEqual({ size: data.byteLength, sha256: sha(data), offset: 0 });
    expect(sha(readFileSync(join(root, 'up.bin')))).toBe(sha(data));

    const dst = join(local, 'down.bin');
    const down = await downloadFile(pair.controllerMux, pair.sessionId, 'up.bin', dst);
    expect(down.sha256).toBe(sha(data));
    expect(sha(readFileSync(dst))).toBe(sha(data));

    await expect(uploadFile(pair.controllerMux, pair.sessionId, src, '../escape.bin')).rejects.toMatchObject({
      code: Errors.FILE_PATH_ESCAPE.code,
    });
    await expect(
      downloadFile(pair.controllerMux, pair.sessionId, '../../etc/passwd', join(local, 'x')),
    ).rejects.toMatchObject({
      code: Errors.FILE_PATH_ESCAPE.code,
      message: "Path '../../etc/passwd' escapes the file root",
    });
    expect(server.channels.stats()).toEqual({ channels: 0, bufferedBytes: 0 });
  });
});
