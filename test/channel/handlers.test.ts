import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openChannelStream, runCommand } from '../../src/client/channels/controller.js';
import { createDeviceChannelHandler } from '../../src/client/channels/device.js';
import { downloadFile, uploadFile } from '../../src/client/channels/file-client.js';
import { harness, randomBytes, until, type Harness } from './helpers.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function collect(r: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts).toString();
}

let tmp: string;
let root: string;
let local: string;
let h: Harness;
const makeHarness = (): Harness =>
  harness({
    onDeviceOpen: createDeviceChannelHandler({ fileRoot: root, stream: {}, port: {} }),
    window: 64 * 1024,
    maxChunk: 16 * 1024,
  });

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'aipd-chan-'));
  root = path.join(tmp, 'root');
  local = path.join(tmp, 'local');
  await mkdir(root);
  await mkdir(local);
  h = makeHarness();
});
afterEach(async () => {
  h.controller.closeAll();
  h.device.closeAll();
  await rm(tmp, { recursive: true, force: true });
});

describe('stream channels (child_process)', () => {
  it('runs `echo hello` and reports exit code 0', async () => {
    const { stream, exit } = await runCommand(h.controller, 's1', 'echo hello', { shell: true });
    stream.end();
    expect(await collect(stream)).toBe('hello\n');
    expect(await exit).toEqual({ exitCode: 0, signal: null });
  });

  it('`cat` echoes stdin until the controller half-closes', async () => {
    const { stream, exit } = await runCommand(h.controller, 's1', 'cat');
    stream.write('line one\n');
    stream.end('line two\n');
    expect(await collect(stream)).toBe('line one\nline two\n');
    expect((await exit).exitCode).toBe(0);
  });

  it('carries stderr and a non-zero exit code', async () => {
    const { stream, exit } = await runCommand(h.controller, 's1', 'echo oops 1>&2; exit 3', { shell: true });
    stream.end();
    expect(await collect(stream)).toBe('oops\n');
    expect((await exit).exitCode).toBe(3);
  });

  it('resetting the channel kills the process', async () => {
    const { stream } = await runCommand(h.controller, 's1', 'echo $$; exec sleep 30', { shell: true });
    const first = (await new Promise<Buffer>((r) => stream.once('data', r))).toString();
    const pid = Number(first.trim());
    expect(pid).toBeGreaterThan(0);
    stream.destroy();
    const alive = (): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await until(() => !alive());
    await until(() => h.router.stats().channels === 0 && h.device.size === 0);
  });

  it('a missing program is rejected', async () => {
    await expect(runCommand(h.controller, 's1', '/nonexistent/prog')).rejects.toMatchObject({ code: 7040 });
  });
});

describe('port channels', () => {
  let server: http.Server;
  afterEach(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('carries an HTTP request to a local server and the response back', async () => {
    server = http.createServer((req, res) => res.end(`you asked for ${req.url}`));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const s = await openChannelStream(h.controller, 's1', 'port', { port });
    s.end('GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const reply = await collect(s);
    expect(reply).toMatch(/^HTTP\/1.1 200 OK/);
    expect(reply.endsWith('you asked for /hello')).toBe(true);
    await until(() => h.router.stats().channels === 0);
  });

  it('an unreachable port is rejected, a non-loopback host refused', async () => {
    server = http.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((r) => server.close(() => r()));
    server = http.createServer().listen(0, '127.0.0.1');
    await expect(openChannelStream(h.controller, 's1', 'port', { port })).rejects.toMatchObject({
      code: 7030,
    });
    await expect(
      openChannelStream(h.controller, 's1', 'port', { port: 80, host: '10.1.2.3' }),
    ).rejects.toMatchObject({ code: 7031 });
  });

  it('with a port list (--allow-port) only those loopback ports are reachable; an empty list refuses all', async () => {
    server = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    for (const [ports, want] of [
      [[port], null],
      [[port + 1 > 65535 ? 1 : port + 1], 7031],
      [[], 7031],
    ] as const) {
      h = harness({ onDeviceOpen: createDeviceChannelHandler({ port: { ports } }) });
      const opened = openChannelStream(h.controller, 's1', 'port', { port });
      if (want !== null) {
        await expect(opened).rejects.toMatchObject({
          code: want,
          message: expect.stringContaining(String(port)),
        });
        continue;
      }
      const s = await opened;
      s.end('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(await collect(s)).toMatch(/ok$/);
      await expect(
        openChannelStream(h.controller, 's1', 'port', { port, host: '10.0.0.1' }),
      ).rejects.toMatchObject({ code: 7031 });
    }
  });
});

describe('file channels', () => {
  it('uploads and downloads with a SHA-256 check', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17, 3);
    await writeFile(path.join(local, 'a.bin'), data);
    const up = await uploadFile(h.controller, 's1', path.join(local, 'a.bin'), 'a.bin');
    expect(up).toEqual({ size: data.length, sha256: sha(data), offset: 0 });
    expect(sha(await readFile(path.join(root, 'a.bin')))).toBe(sha(data));
    const down = await downloadFile(h.controller, 's1', 'a.bin', path.join(local, 'b.bin'));
    expect(down.sha256).toBe(sha(data));
    expect(sha(await readFile(path.join(local, 'b.bin')))).toBe(sha(data));
    await until(() => h.router.stats().channels === 0);
    expect(h.router.stats()).toEqual({ channels: 0, bufferedBytes: 0 });
  });

  it('creates missing folders under the root for an upload', async () => {
    const data = randomBytes(70_000, 5);
    await writeFile(path.join(local, 'nested.bin'), data);
    const up = await uploadFile(h.controller, 's1', path.join(local, 'nested.bin'), 'sub/dir/nested.bin');
    expect(up.sha256).toBe(sha(data));
    expect(sha(await readFile(path.join(root, 'sub/dir/nested.bin')))).toBe(sha(data));
  });

  it('rejects paths escaping the root: .., absolute, and a symlink out', async () => {
    const outside = path.join(tmp, 'outside');
    await mkdir(outside);
    await writeFile(path.join(outside, 'secret'), 'x');
    await symlink(outside, path.join(root, 'link'));
    for (const p of ['../local/x', '/etc/passwd', 'link/secret', 'sub/../../x']) {
      await expect(downloadFile(h.controller, 's1', p, path.join(local, 'x'))).rejects.toMatchObject({
        code: 7020,
        message: `Path '${p}' escapes the file root`,
      });
    }
    await writeFile(path.join(local, 'up'), 'data');
    await expect(uploadFile(h.controller, 's1', path.join(local, 'up'), 'link/new')).rejects.toMatchObject({
      code: 7020,
    });
    expect(await stat(path.join(outside, 'new')).catch(() => null)).toBeNull();
  });

  it("resumes an interrupted upload from the device's partial file after a reconnect", async () => {
    const data = randomBytes(4 * 1024 * 1024, 9);
    await writeFile(path.join(local, 'big'), data);
    // The link to the device goes dead after 1 MiB: frames beyond it are lost, so the writer stalls.
    const deliver = h.deviceConn.deliver!;
    let delivered = 0;
    h.deviceConn.deliver = (f) => {
      delivered += f.byteLength;
      if (delivered <= 1 << 20) deliver(f);
    };
    const first = uploadFile(h.controller, 's1', path.join(local, 'big'), 'big');
    const failed = first.then(
      () => null,
      (e: unknown) => e,
    );
    await until(() => delivered > 1 << 20);
    h.deviceConn.close();
    h.router.onConnectionClosed(h.deviceConn);
    h.device.closeAll();
    expect(await failed).toMatchObject({ code: 7009 });
    await new Promise((r) => setTimeout(r, 20)); // let the device's file handler finish its last write
    const partSize = (await stat(path.join(root, 'big.part'))).size;
    expect(partSize).toBeGreaterThan(0);
    expect(partSize).toBeLessThan(data.length);
    h = makeHarness(); // reconnect
    const again = await uploadFile(h.controller, 's1', path.join(local, 'big'), 'big', { resume: true });
    expect(again.offset).toBe(partSize);
    expect(sha(await readFile(path.join(root, 'big')))).toBe(sha(data));
    expect(await stat(path.join(root, 'big.part')).catch(() => null)).toBeNull();
  });

  it('resumes a download from the local length and verifies the whole file', async () => {
    const data = randomBytes(1024 * 1024 + 5, 11);
    await writeFile(path.join(root, 'd.bin'), data);
    await writeFile(path.join(local, 'd.bin'), data.subarray(0, 300_000));
    const r = await downloadFile(h.controller, 's1', 'd.bin', path.join(local, 'd.bin'), { resume: true });
    expect(r.offset).toBe(300_000);
    expect(sha(await readFile(path.join(local, 'd.bin')))).toBe(sha(data));
    // A corrupt local prefix is caught by the whole-file SHA-256.
    const bad = Buffer.from(data.subarray(0, 1000));
    bad[10] = bad[10]! ^ 0xff;
    await writeFile(path.join(local, 'e.bin'), bad);
    await expect(
      downloadFile(h.controller, 's1', 'd.bin', path.join(local, 'e.bin'), { resume: true }),
    ).rejects.toMatchObject({ code: 7022 });
  });

  it('an upload whose bytes do not match the announced SHA-256 is refused and not installed', async () => {
    await writeFile(path.join(local, 'f'), 'hello');
    const ep = await h.controller.open({
      session_id: 's1',
      kind: 'file',
      params: { op: 'upload', path: 'f', size: 5, sha256: sha(Buffer.from('HELLO')) },
    });
    const { ChannelReader } = await import('../../src/client/channels/records.js');
    const reader = new ChannelReader(ep);
    expect(await reader.readRecord()).toEqual({ offset: 0 });
    await ep.write(Buffer.from('hello'));
    await ep.end();
    expect(await reader.readRecord()).toMatchObject({ ok: false, code: 7022 });
    expect(await stat(path.join(root, 'f')).catch(() => null)).toBeNull();
  });
});
