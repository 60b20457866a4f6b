/**
 * Uploads onto paths that are already taken, over real HTTP to a real `aipd device`: a file already there is
 * replaced (as Backend.AI's upload does), and a file standing where the upload needs a folder is the client's
 * fault, a 400 naming that file, not a 502 as if the device had failed.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_KEY } from '../helpers/aip-server.js';
import { startDeviceServer, type DeviceServer } from './helpers.js';

let ds: DeviceServer;
let root: string;
let sid: string;

beforeAll(async () => {
  ds = await startDeviceServer('upload-dev');
  root = ds.root;
  sid = await ds.interactive();
}, 60_000);

afterAll(() => ds?.stop());

async function upload(
  query: string,
  name: string,
  content: string,
): Promise<{ status: number; body: unknown }> {
  const form = new FormData();
  form.append('f', new Blob([content]), name);
  const r = await fetch(`${ds.base}/sessions/${sid}/upload${query}`, {
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
