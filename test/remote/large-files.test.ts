/**
 * A 256 MiB upload and download through a real `aipd serve` child process and a real `aipd device`: the SHA-256
 * matches both ways, and the server's RSS (read from /proc) grows by less than 64 MiB while the bytes pass.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveProcess } from '../helpers/cli-process.js';
import { startDevice, type DeviceProc } from './helpers.js';

const KEY = 'large-files-key-0123456789';
const SIZE = 256 * 1024 * 1024;
const procs: ChildProcessWithoutNullStreams[] = [];
let tmp: string;
let root: string;
let src: string;
let srcSha: string;
let base: string;
let serverPid: number;
let device: DeviceProc;

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** Samples the server's RSS every 50 ms while `fn` runs; resolves with the peak. */
async function peakRss<T>(fn: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = await rssBytes(serverPid);
  let running = true;
  const sampler = (async () => {
    while (running) {
      peak = Math.max(peak, await rssBytes(serverPid));
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    return { value: await fn(), peak };
  } finally {
    running = false;
    await sampler;
  }
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'aipd-large-'));
  root = path.join(tmp, 'root');
  await import('node:fs/promises').then((fs) => fs.mkdir(root));
  src = path.join(tmp, 'source.bin');
  // 256 MiB of random-looking bytes: one random MiB, each copy salted with its index.
  const block = randomBytes(1024 * 1024);
  const h = createHash('sha256');
  const out = createWriteStream(src);
  for (let i = 0; i < SIZE / block.byteLength; i++) {
    block.writeUInt32BE(i, 0);
    h.update(block);
    if (!out.write(Buffer.from(block))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  srcSha = h.digest('hex');
  const served = await serveProcess(0, KEY, { track: procs });
  serverPid = served.proc.pid!;
  base = `http://127.0.0.1:${served.port}`;
  device = await startDevice(base, KEY, 'big-dev', ['--root', root]);
}, 120_000);

afterAll(async () => {
  await device?.stop();
  for (const p of procs) p.kill('SIGKILL');
  await rm(tmp, { recursive: true, force: true });
});

function request(method: string, p: string, headers: Record<string, string> = {}): http.ClientRequest {
  const u = new URL(p, base);
  return http.request({
    method,
    host: u.hostname,
    port: u.port,
    path: u.pathname + u.search,
    headers: { 'x-api-key': KEY, ...headers },
  });
}

describe('256 MiB through a session', () => {
  it('uploads and downloads with matching SHA-256 while the server grows by less than 64 MiB', async () => {
    const created = await fetch(`${base}/sessions`, {
      method: 'POST',
      headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ agent_id: 'big-dev', session_type: 'interactive' }),
    });
    const id = ((await created.json()) as { id: string }).id;
    const baseline = await rssBytes(serverPid);

    const up = await peakRss(async () => {
      const boundary = '----aipd-large-boundary';
      const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
      const tail = `\r\n--${boundary}--\r\n`;
      const req = request('POST', `/sessions/${id}/upload`, {
        'content-type': `multipart/form-data; boundary=${boundary}`,
      });
      const answered = once(req, 'response') as Promise<[http.IncomingMessage]>;
      req.write(head);
      for await (const chunk of createReadStream(src, { highWaterMark: 256 * 1024 })) {
        if (!req.write(chunk)) await once(req, 'drain');
      }
      req.end(tail);
      const [res] = await answered;
      let body = '';
      for await (const c of res) body += String(c);
      return {
        status: res.statusCode,
        body: JSON.parse(body) as { files: { size: number; sha256: string }[] },
      };
    });
    expect(up.value.status).toBe(200);
    expect(up.value.body.files[0]).toMatchObject({ size: SIZE, sha256: srcSha });

    const down = await peakRss(async () => {
      const req = request('GET', `/sessions/${id}/download_single?file=big.bin`);
      req.end();
      const [res] = (await once(req, 'response')) as [http.IncomingMessage];
      const h = createHash('sha256');
      let n = 0;
      for await (const c of res) {
        h.update(c as Buffer);
        n += (c as Buffer).byteLength;
      }
      return { status: res.statusCode, size: n, sha: h.digest('hex') };
    });
    expect(down.value).toEqual({ status: 200, size: SIZE, sha: srcSha });
    const grew = Math.max(up.peak, down.peak) - baseline;
    expect(grew, `server RSS grew by ${(grew / 2 ** 20).toFixed(1)} MiB`).toBeLessThan(64 * 1024 * 1024);
  }, 240_000);
});
