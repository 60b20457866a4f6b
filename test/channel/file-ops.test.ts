/** File channels: list, ranged download and streamed upload, between an in-process controller and the device. */
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, mkdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChannelEndpoint } from '../../src/channel/endpoint.js';
import { createDeviceChannelHandler } from '../../src/client/channels/device.js';
import { downloadFile, listFiles, uploadStream } from '../../src/client/channels/file-client.js';
import { ChannelReader } from '../../src/client/channels/records.js';
import { harness, randomBytes, until, type Harness } from './helpers.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let tmp: string;
let root: string;
let h: Harness;

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'aipd-fileops-'));
  root = path.join(tmp, 'root');
  await mkdir(root);
  h = harness({
    onDeviceOpen: createDeviceChannelHandler({ fileRoot: root }),
    window: 64 * 1024,
    maxChunk: 16 * 1024,
  });
});
afterEach(async () => {
  h.controller.closeAll();
  h.device.closeAll();
  await rm(tmp, { recursive: true, force: true });
});

const open = (params: Record<string, unknown>): Promise<ChannelEndpoint> =>
  h.controller.open({ session_id: 's1', kind: 'file', params });

describe('list', () => {
  it('lists a folder sorted by name with size, octal mode, ISO mtime and is_dir', async () => {
    await writeFile(path.join(root, 'b.txt'), 'hello');
    await chmod(path.join(root, 'b.txt'), 0o640);
    await utimes(
      path.join(root, 'b.txt'),
      new Date('2026-01-02T03:04:05Z'),
      new Date('2026-01-02T03:04:05Z'),
    );
    await mkdir(path.join(root, 'a-dir'));
    await chmod(path.join(root, 'a-dir'), 0o755);
    await writeFile(path.join(root, 'a-dir', 'inner'), 'x');
    const { files, truncated } = await listFiles(h.controller, 's1', '.');
    expect(truncated).toBe(false);
    expect(files.map((f) => f.filename)).toEqual(['a-dir', 'b.txt']);
    expect(files[0]).toMatchObject({ filename: 'a-dir', mode: '0755', is_dir: true });
    expect(files[1]).toEqual({
      filename: 'b.txt',
      size: 5,
      mode: '0640',
      mtime: '2026-01-02T03:04:05.000Z',
      is_dir: false,
    });
    expect((await listFiles(h.controller, 's1', 'a-dir')).files.map((f) => f.filename)).toEqual(['inner']);
    await until(() => h.router.stats().channels === 0 && h.device.size === 0);
  });

  it('refuses a missing path, a file, and paths that escape the root', async () => {
    await writeFile(path.join(root, 'f'), 'x');
    await mkdir(path.join(tmp, 'outside'));
    await symlink(path.join(tmp, 'outside'), path.join(root, 'link'));
    await expect(listFiles(h.controller, 's1', 'nope')).rejects.toMatchObject({ code: 7021 });
    await expect(listFiles(h.controller, 's1', 'f')).rejects.toMatchObject({
      code: 7026,
      message: "'f' is not a directory",
    });
    for (const p of ['..', '../outside', '/etc', 'link'])
      await expect(listFiles(h.controller, 's1', p)).rejects.toMatchObject({ code: 7020 });
  });

  it('stops at 10,000 entries and says it truncated', async () => {
    const dir = path.join(root, 'many');
    await mkdir(dir);
    const names = Array.from({ length: 10_005 }, (_, i) => `f${String(i).padStart(5, '0')}`);
    for (let i = 0; i < names.length; i += 500)
      await Promise.all(names.slice(i, i + 500).map((n) => writeFile(path.join(dir, n), '')));
    const { files, truncated } = await listFiles(h.controller, 's1', 'many');
    expect(truncated).toBe(true);
    expect(files).toHaveLength(10_000);
    expect(files[0]!.filename).toBe('f00000');
    expect(files[9_999]!.filename).toBe('f09999');
  });
});

describe('ranged download', () => {
  const data = randomBytes(300_000, 7);
  beforeEach(() => writeFile(path.join(root, 'd.bin'), data));

  async function ranged(params: Record<string, unknown>): Promise<{
    head: Record<string, unknown>;
    body: Buffer;
    tail: Record<string, unknown>;
  }> {
    const ep = await open({ op: 'download', path: 'd.bin', ...params });
    await ep.end();
    const reader = new ChannelReader(ep);
    const head = await reader.readRecord();
    const body = Buffer.from(await reader.readExact(Number(head.length)));
    const tail = await reader.readRecord();
    expect(await reader.atEnd()).toBe(true);
    return { head, body, tail };
  }

  it('sends only [offset, offset+length) with the SHA-256 of the bytes sent', async () => {
    const r = await ranged({ offset: 1000, length: 5000 });
    expect(r.head).toEqual({ size: data.length, offset: 1000, length: 5000 });
    expect(r.body.equals(Buffer.from(data.subarray(1000, 6000)))).toBe(true);
    expect(r.tail).toEqual({ sha256: sha(data.subarray(1000, 6000)) });
  });

  it('clamps the length to the end of the file; length 0 sends nothing', async () => {
    const r = await ranged({ offset: data.length - 10, length: 100 });
    expect(r.head).toEqual({ size: data.length, offset: data.length - 10, length: 10 });
    expect(r.tail).toEqual({ sha256: sha(data.subarray(data.length - 10)) });
    const z = await ranged({ offset: 5, length: 0 });
    expect(z.head.length).toBe(0);
    expect(z.tail).toEqual({ sha256: sha(new Uint8Array(0)) });
  });

  it('without length: the rest of the file, hashed whole (as before)', async () => {
    const r = await ranged({ offset: 100 });
    expect(r.head).toEqual({ size: data.length, offset: 100, length: data.length - 100 });
    expect(r.tail).toEqual({ sha256: sha(data) });
    const local = path.join(tmp, 'copy');
    expect((await downloadFile(h.controller, 's1', 'd.bin', local)).sha256).toBe(sha(data));
  });

  it('refuses a bad length or an offset past the end', async () => {
    await expect(open({ op: 'download', path: 'd.bin', length: -1 })).rejects.toMatchObject({ code: 7015 });
    await expect(
      open({ op: 'download', path: 'd.bin', offset: data.length + 1, length: 1 }),
    ).rejects.toMatchObject({ code: 7023 });
  });
});

describe('streamed upload (size and SHA-256 in the FIN trailer)', () => {
  async function* chunks(data: Uint8Array, n: number): AsyncIterable<Uint8Array> {
    for (let i = 0; i < data.length; i += n) yield data.subarray(i, i + n);
  }

  it('writes a .part file as bytes come, checks the trailer, and renames it into place', async () => {
    const data = randomBytes(2 * 1024 * 1024 + 3, 4);
    const r = await uploadStream(h.controller, 's1', chunks(data, 100_000), 'up/s.bin');
    expect(r).toEqual({ size: data.length, sha256: sha(data), offset: 0 });
    expect(sha(await readFile(path.join(root, 'up/s.bin')))).toBe(sha(data));
    expect(await stat(path.join(root, 'up/s.bin.part')).catch(() => null)).toBeNull();
    await until(() => h.router.stats().channels === 0 && h.device.size === 0);
  });

  async function streamed(
    bytes: string,
    trailer: Record<string, unknown> | null,
  ): Promise<Record<string, unknown>> {
    const ep = await open({ op: 'upload', path: 'x.bin' });
    const reader = new ChannelReader(ep);
    expect(await reader.readRecord()).toEqual({ offset: 0 });
    await ep.write(Buffer.from(bytes));
    await ep.end(trailer);
    return reader.readRecord();
  }

  it('a checksum mismatch, a size mismatch or a missing trailer is refused and leaves no file', async () => {
    const hello = sha(Buffer.from('hello'));
    expect(await streamed('hellO', { size: 5, sha256: hello })).toMatchObject({ ok: false, code: 7022 });
    expect(await streamed('hello!', { size: 5, sha256: hello })).toMatchObject({ ok: false, code: 7025 });
    expect(await streamed('hello', null)).toMatchObject({ ok: false, code: 7015 });
    expect(await stat(path.join(root, 'x.bin')).catch(() => null)).toBeNull();
    expect(await stat(path.join(root, 'x.bin.part')).catch(() => null)).toBeNull();
    expect(await streamed('hello', { size: 5, sha256: hello.toUpperCase() })).toEqual({
      ok: true,
      size: 5,
      sha256: hello,
    });
    expect(await readFile(path.join(root, 'x.bin'), 'utf8')).toBe('hello');
  });

  it('a reset mid-upload removes the .part file', async () => {
    const ep = await open({ op: 'upload', path: 'gone.bin' });
    const reader = new ChannelReader(ep);
    await reader.readRecord();
    await ep.write(Buffer.from('partial'));
    await until(() => h.router.stats().bufferedBytes === 0);
    ep.reset();
    await until(() => h.device.size === 0);
    for (let i = 0; i < 500 && (await stat(path.join(root, 'gone.bin.part')).catch(() => null)); i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(await stat(path.join(root, 'gone.bin.part')).catch(() => null)).toBeNull();
  });
});
