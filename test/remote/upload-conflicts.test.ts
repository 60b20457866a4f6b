/**
 * Uploads onto paths that are already taken, over real HTTP to a real `aipd device`: a file already there is
 * replaced (as Backend.AI's upload does), and a file standing where the upload needs a folder is the client's
 * fault, a 400 naming that file, not a 502 as if the device had failed.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { api, startDevice, type Api, type DeviceProc } from './helpers.js';

let server: Awaited<ReturnType<typeof startTestServer>>;
let device: DeviceProc;
let root: string;
let base: string;
let a: Api;
let sid: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'aipd-upload-conflicts-'));
  server = await startTestServer();
  base = `http://127.0.0.1:${server.port}`;
  a = api(base, TEST_KEY);
  device = await startDevice(base, TEST_KEY, 'upload-dev', ['--root', root]);
  const r = await a.call('POST', '/sessions', { agent_id: 'upload-dev', session_type: 'interactive' });
  expect(r.status, r.text).toBe(201);
  sid = r.json.id as string;
}, 60_000);

afterAll(async () => {
  await device?.stop();
  await server?.close();
  await rm(root, { recursive: true, force: true });
});

async function upload(
  query: string,
  name: string,
  content: string,
): Promise<{ status: number; body: unknown }> {
  const form = new FormData();
  form.append('f', new Blob([content]), name);
  const r = await fetch(`${base}/sessions/${sid}/upload${query}`, {
    method: 'POST',
    headers: { 'x-api-key': TEST_KEY },
    body: form,
  });
  return { status: r.status, body: await r.json() };
}

describe('upload onto a path that is taken', () => {
  it('replaces a file that is already there', async () => {
    await writeFile(path.join(root, 'same.txt'), 'old contents');
    const r = await upload('', 'same.txt', 'new');
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(await readFile(path.join(root, 'same.txt'), 'utf8')).toBe('new');
  });

  it('answers 400 FILE_NOT_A_DIRECTORY, naming the file, when a file stands where a folder has to be', async () => {
    await writeFile(path.join(root, 'plain'), 'a file');
    const into = await upload('?path=plain', 'x.txt', 'x');
    expect(into).toEqual({ status: 400, body: { detail: "'plain' is not a directory" } });
    await mkdir(path.join(root, 'd'), { recursive: true });
    await writeFile(path.join(root, 'd', 'leaf'), 'a file');
    const deeper = await upload('?path=d/leaf/sub', 'y.txt', 'y');
    expect(deeper).toEqual({ status: 400, body: { detail: "'d/leaf' is not a directory" } });
    // nothing was written or removed, and the session goes on serving
    expect(await readFile(path.join(root, 'd', 'leaf'), 'utf8')).toBe('a file');
    expect((await upload('?path=d', 'z.txt', 'z')).status).toBe(200);
    expect(await readFile(path.join(root, 'd', 'z.txt'), 'utf8')).toBe('z');
  });
});
