/**
 * Remote execution end to end: a real aipd (uWS on port 0), a real `aipd device` child process with --root,
 * --allow-exec and --allow-port, real HTTP and real WebSockets.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { alive } from '../helpers/process.js';
import { api, startDevice, StreamClient, until, type Api, type DeviceProc } from './helpers.js';

let server: Awaited<ReturnType<typeof startTestServer>>;
let device: DeviceProc;
let root: string;
let base: string;
let a: Api;
let web: http.Server;
let webPort: number;

const DEV = 'remote-dev-1';

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'aipd-remote-'));
  web = http.createServer((req, res) => res.end(`hello from the device's web server: ${req.url}`));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  webPort = (web.address() as AddressInfo).port;
  server = await startTestServer();
  base = `http://127.0.0.1:${server.port}`;
  a = api(base, TEST_KEY);
  device = await startDevice(base, TEST_KEY, DEV, [
    '--root',
    root,
    '--allow-exec',
    '--allow-port',
    String(webPort),
  ]);
}, 60_000);

afterAll(async () => {
  await device?.stop();
  await server?.close();
  await new Promise((r) => web?.close(r));
  await rm(root, { recursive: true, force: true });
});

async function interactive(): Promise<string> {
  const r = await a.call('POST', '/sessions', { agent_id: DEV, session_type: 'interactive' });
  expect(r.status, r.text).toBe(201);
  expect(r.json.status).toBe('active');
  return r.json.id as string;
}

const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

describe('typed sessions', () => {
  it('refuses bad types, bad parameters, and unknown or offline devices with a message that names the problem', async () => {
    const port = await a.call('POST', '/sessions', {
      agent_id: DEV,
      session_type: 'Port',
      parameters: { portNumber: ['http'] },
    });
    expect(port.status).toBe(422);
    expect(port.json.detail).toMatch(/parameters\.portNumber/);
    const cmd = await a.call('POST', '/sessions', {
      agent_id: DEV,
      session_type: 'InteractiveCommands',
      parameters: {},
    });
    expect(cmd.status).toBe(422);
    expect(cmd.json.detail).toMatch(/command/);
    const extra = await a.call('POST', '/sessions', {
      agent_id: DEV,
      session_type: 'interactive',
      parameters: { shell: ['x'] },
    });
    expect(extra.status).toBe(422);
    const plain = await a.call('POST', '/sessions', { agent_id: DEV, session_type: 'notes', parameters: {} });
    expect(plain.status).toBe(422);
    const unknown = await a.call('POST', '/sessions', {
      agent_id: 'never-seen',
      session_type: 'interactive',
    });
    expect(unknown.status).toBe(404);
    expect(unknown.json.detail).toContain("'never-seen' is not known");
    // A device with a record but no connection is offline: 409.
    await a.call('POST', '/sessions', { agent_id: 'gone-dev', session_type: 'notes' });
    const offline = await a.call('POST', '/sessions', {
      agent_id: 'gone-dev',
      session_type: 'Standard_Stream',
    });
    expect(offline.status).toBe(409);
    expect(offline.json.detail).toContain("'gone-dev' is not connected");
  });
});

describe('execute', () => {
  it('runs `echo hi` and returns its stdout and exit code', async () => {
    const id = await interactive();
    const r = await a.call('POST', `/sessions/${id}/execute`, {
      mode: 'query',
      code: 'echo hi; echo oops >&2; exit 0',
    });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ status: 'finished', exit_code: 0, stdout: 'hi\n', stderr: 'oops\n' });
    expect(typeof r.json.duration_ms).toBe('number');
    const fail = await a.call('POST', `/sessions/${id}/execute`, { mode: 'query', code: 'exit 7' });
    expect(fail.json).toMatchObject({ status: 'finished', exit_code: 7 });
  });

  it('streams output as server-sent events', async () => {
    const id = await interactive();
    const r = await a.call(
      'POST',
      `/sessions/${id}/execute`,
      { mode: 'query', code: 'echo one; echo two >&2' },
      { accept: 'text/event-stream' },
    );
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/event-stream');
    expect(r.text).toContain('event: stdout\ndata: {"data":"one\\n"}');
    expect(r.text).toContain('event: stderr\ndata: {"data":"two\\n"}');
    expect(r.text).toMatch(/event: exit\ndata: \{"status":"finished","exit_code":0/);
  });

  it("frees each run's channel: more runs than a connection's channel limit (64) on one session all finish", async () => {
    const id = await interactive();
    const start = server.channels.stats().channels;
    for (let i = 0; i < 70; i++) {
      const r = await a.call('POST', `/sessions/${id}/execute`, { mode: 'query', code: `echo run-${i}` });
      expect(r.status, `run ${i}: ${r.text}`).toBe(200);
      expect(r.json).toMatchObject({ status: 'finished', exit_code: 0, stdout: `run-${i}\n` });
    }
    await until(() => server.channels.stats().channels === start, 'no channel left open');
  });

  it('runs AIP actions in batch mode', async () => {
    const id = await interactive();
    const r = await a.call('POST', `/sessions/${id}/execute`, {
      mode: 'batch',
      actions: [
        { tool_name: 'echo', parameters: { x: 1 } },
        { tool_name: 'execute_command', parameters: { command: 'echo batch' } },
      ],
    });
    expect(r.status, r.text).toBe(200);
    expect(r.json.status).toBe('finished');
    expect(r.json.results[0]).toMatchObject({ status: 'success', result: { x: 1 } });
    expect(r.json.results[1].result).toMatchObject({ stdout: 'batch\n', exit_code: 0 });
  });

  it('interrupts a 30 s command: the call returns `interrupted` and the process is gone on the device', async () => {
    const id = await interactive();
    const pidFile = path.join(root, `sleep-${id}.pid`);
    const running = a.call('POST', `/sessions/${id}/execute`, {
      mode: 'query',
      code: `sleep 30 & echo $! > '${pidFile}'; wait`,
    });
    await until(
      async () => (await readFile(pidFile, 'utf8').catch(() => '')).trim().length > 0,
      'the pid file',
    );
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    expect(alive(pid)).toBe(true);
    const busy = await a.call('POST', `/sessions/${id}/execute`, { mode: 'query', code: 'true' });
    expect(busy.status).toBe(409);
    const int = await a.call('POST', `/sessions/${id}/interrupt`);
    expect(int.json).toEqual({ interrupted: true });
    const r = await running;
    expect(r.json.status).toBe('interrupted');
    await until(() => !alive(pid), `process ${pid} to be gone`);
    const logs = await a.call('GET', `/sessions/${id}/logs`);
    expect(logs.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(logs.text).toMatch(/remote\.interrupt/);
    expect(logs.text).toMatch(/remote\.execute .*"status":"interrupted"/);
  });

  it('interrupts a JSON call whose client leaves: the process is gone and the session takes the next call', async () => {
    const id = await interactive();
    const pidFile = path.join(root, `left-${id}.pid`);
    const body = JSON.stringify({ mode: 'query', code: `sleep 30 & echo $! > '${pidFile}'; wait` });
    const req = http.request(`${base}/sessions/${id}/execute`, {
      method: 'POST',
      headers: { 'x-api-key': TEST_KEY, 'content-type': 'application/json' },
    });
    req.on('error', () => undefined); // destroyed below
    req.end(body);
    await until(
      async () => (await readFile(pidFile, 'utf8').catch(() => '')).trim().length > 0,
      'the pid file',
    );
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    expect(alive(pid)).toBe(true);
    req.destroy(); // the client goes away without its answer
    await until(() => !alive(pid), `process ${pid} to be gone`);
    const next = await a.call('POST', `/sessions/${id}/execute`, { mode: 'query', code: 'echo next' });
    expect(next.status, next.text).toBe(200);
    expect(next.json.stdout).toBe('next\n');
    const logs = await a.call('GET', `/sessions/${id}/logs`);
    expect(logs.text).toMatch(/remote\.execute .*"status":"interrupted"/);
  });

  it('times out a command that outlives timeout_ms', async () => {
    const id = await interactive();
    const r = await a.call('POST', `/sessions/${id}/execute`, {
      mode: 'query',
      code: 'sleep 20',
      timeout_ms: 300,
    });
    expect(r.json.status).toBe('timeout');
  });
});

describe('files', () => {
  it('uploads multipart files, lists them, downloads one with a Range, and refuses a path escape', async () => {
    const id = await interactive();
    const form = new FormData();
    form.append('f1', new Blob(['alpha file\n']), 'alpha.txt');
    form.append('f2', new Blob(['0123456789']), 'beta.bin');
    const up = await fetch(`${base}/sessions/${id}/upload?path=up`, {
      method: 'POST',
      headers: { 'x-api-key': TEST_KEY },
      body: form,
    });
    const upJson = (await up.json()) as { files: { path: string; size: number; sha256: string }[] };
    expect(up.status, JSON.stringify(upJson)).toBe(200);
    expect(upJson.files).toEqual([
      { filename: 'alpha.txt', path: 'up/alpha.txt', size: 11, sha256: sha('alpha file\n') },
      { filename: 'beta.bin', path: 'up/beta.bin', size: 10, sha256: sha('0123456789') },
    ]);
    expect(await readFile(path.join(root, 'up', 'beta.bin'), 'utf8')).toBe('0123456789');

    const list = await a.call('GET', `/sessions/${id}/files?path=up`);
    expect(list.status).toBe(200);
    expect(
      list.json.files.map((f: { filename: string; size: number; is_dir: boolean }) => [
        f.filename,
        f.size,
        f.is_dir,
      ]),
    ).toEqual([
      ['alpha.txt', 11, false],
      ['beta.bin', 10, false],
    ]);
    const escape = await a.call('GET', `/sessions/${id}/files?path=../`);
    expect(escape.status).toBe(403);
    expect(escape.json.detail).toMatch(/escapes the file root/);
    const escUp = new FormData();
    escUp.append('f', new Blob(['x']), '../evil.txt');
    const bad = await fetch(`${base}/sessions/${id}/upload`, {
      method: 'POST',
      headers: { 'x-api-key': TEST_KEY },
      body: escUp,
    });
    expect(bad.status).toBe(403);
    await expect(readFile(path.join(path.dirname(root), 'evil.txt'))).rejects.toThrow();

    const whole = await a.call('GET', `/sessions/${id}/download_single?file=up/beta.bin`);
    expect(whole.status).toBe(200);
    expect(whole.text).toBe('0123456789');
    const part = await a.call('GET', `/sessions/${id}/download_single?file=up/beta.bin`, undefined, {
      range: 'bytes=2-5',
    });
    expect(part.status).toBe(206);
    expect(part.text).toBe('2345');
    expect(part.headers.get('content-range')).toBe('bytes 2-5/10');
    const tail = await a.call('GET', `/sessions/${id}/download_single?file=up/beta.bin`, undefined, {
      range: 'bytes=-3',
    });
    expect(tail.text).toBe('789');
    const missing = await a.call('GET', `/sessions/${id}/download_single?file=nope.txt`);
    expect(missing.status).toBe(404);
  });

  it('downloads two files as a tar stream', async () => {
    const id = await interactive();
    await writeFile(path.join(root, 'one.txt'), 'first file');
    await writeFile(path.join(root, 'two.txt'), 'second file, longer');
    const r = await fetch(`${base}/sessions/${id}/download?files=one.txt&files=two.txt`, {
      headers: { 'x-api-key': TEST_KEY },
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/x-tar');
    const entries = await untar(Buffer.from(await r.arrayBuffer()));
    expect(entries).toEqual({ 'one.txt': 'first file', 'two.txt': 'second file, longer' });
  });
});

describe('services', () => {
  it('reaches an HTTP server on the device through a listener on the server', async () => {
    const id = await interactive();
    const open = await a.call('POST', `/sessions/${id}/services`, { port: webPort });
    expect(open.status, open.text).toBe(201);
    expect(open.json.local_host).toBe('127.0.0.1');
    const res = await fetch(`http://127.0.0.1:${open.json.local_port}/through/the/tunnel`);
    expect(await res.text()).toBe("hello from the device's web server: /through/the/tunnel");
    const notAllowed = await a.call('POST', `/sessions/${id}/services`, { port: webPort === 1 ? 2 : 1 });
    expect(notAllowed.status).toBe(403);
    const list = await a.call('GET', `/sessions/${id}/services`);
    expect(list.json.services).toHaveLength(1);
    const del = await a.call('DELETE', `/sessions/${id}/services/${open.json.local_port}`);
    expect(del.status).toBe(204);
    expect(await refused(open.json.local_port as number)).toBe(true);
  });
});

describe('Standard_Stream', () => {
  it('runs `stty size` in a real PTY after a resize, and reports the exit code of `exit 3`', async () => {
    const r = await a.call('POST', '/sessions', { agent_id: DEV, session_type: 'Standard_Stream' });
    expect(r.status, r.text).toBe(201);
    expect(r.json.stream_url).toBe(`ws://127.0.0.1:${server.port}/sessions/${r.json.id}/stream`);
    expect(typeof r.json.token_value).toBe('string');
    const s = new StreamClient(r.json.stream_url as string);
    await s.start(r.json.token_value as string, { rows: 24, cols: 80 });
    await s.until(() => s.text('ready') !== undefined, 'ready');
    expect(s.text('ready')).toMatchObject({
      session_id: r.json.id,
      session_type: 'Standard_Stream',
      pty: true,
    });
    s.control({ type: 'resize', rows: 30, cols: 100 });
    s.input('stty size\n');
    await s.until(() => /30 100/.test(s.stdout), '`stty size` to print 30 100');
    s.input('exit 3\n');
    await s.until(() => s.text('exit') !== undefined, 'the exit message');
    expect(s.text('exit')).toMatchObject({ exit_code: 3 });
    expect((await s.closed).code).toBe(1000);
    await until(
      async () => (await a.call('GET', `/sessions/${r.json.id}`)).json.status === 'completed',
      'completed',
    );
  });

  it("closes a Port connection's channel when the device's service closes first", async () => {
    const r = await a.call('POST', '/sessions', {
      agent_id: DEV,
      session_type: 'Port',
      parameters: { portNumber: [String(webPort)] },
    });
    expect(r.status, r.text).toBe(201);
    const start = server.channels.stats().channels;
    let token = r.json.token_value as string;
    for (let i = 0; i < 3; i++) {
      if (i > 0) token = (await a.call('POST', `/sessions/${r.json.id}/token`)).json.token_value as string;
      const s = new StreamClient(r.json.stream_url as string);
      await s.start(token);
      await s.until(() => s.text('ready') !== undefined, 'ready');
      s.input('GET /port HTTP/1.0\r\n\r\n'); // HTTP/1.0: the web server closes after its answer
      expect((await s.closed).code).toBe(1000);
      await until(() => server.channels.stats().channels === start, `connection ${i}: its channel closed`);
    }
    expect((await a.call('DELETE', `/sessions/${r.json.id}`)).status).toBe(204);
  });

  it('refuses a reused token and a token of another session', async () => {
    const one = await a.call('POST', '/sessions', {
      agent_id: DEV,
      session_type: 'InteractiveCommands',
      parameters: { command: ['cat'] },
    });
    const two = await a.call('POST', '/sessions', {
      agent_id: DEV,
      session_type: 'InteractiveCommands',
      parameters: { command: ['cat'] },
    });
    const foreign = new StreamClient(two.json.stream_url as string);
    await foreign.start(one.json.token_value as string);
    expect((await foreign.closed).code).toBe(4010);
    // The attempt used `one`'s token up: it cannot open `one` now either.
    const reused = new StreamClient(one.json.stream_url as string);
    await reused.start(one.json.token_value as string);
    expect((await reused.closed).code).toBe(4010);
    expect(reused.text('error')).toMatchObject({ code: 6110 });
    // A fresh token works, once.
    const fresh = await a.call('POST', `/sessions/${one.json.id}/token`);
    const ok = new StreamClient(one.json.stream_url as string);
    await ok.start(fresh.json.token_value as string);
    ok.input('sent before ready\n'); // held until the device has opened the stream, not dropped
    await ok.until(() => ok.text('ready') !== undefined, 'ready');
    ok.input('echo through cat\n');
    await ok.until(() => ok.stdout.includes('echo through cat'), 'cat to echo');
    expect(ok.stdout.indexOf('sent before ready')).toBeGreaterThanOrEqual(0);
    expect(ok.stdout.indexOf('sent before ready')).toBeLessThan(ok.stdout.indexOf('echo through cat'));
    const again = new StreamClient(one.json.stream_url as string);
    await again.start(fresh.json.token_value as string);
    expect((await again.closed).code).toBe(4010);
    ok.ws.close(); // the session ends with its stream: a socket for it is refused at the upgrade from now on
    await until(
      async () => (await a.call('GET', `/sessions/${one.json.id}`)).json.status !== 'active',
      'the session to end',
    );
    const refused = new WebSocket(one.json.stream_url as string, ['aipd.stream.v1']);
    refused.on('error', () => undefined);
    const status = await new Promise<number>((r) =>
      refused.once('unexpected-response', (req, res) => {
        req.destroy(); // with this listener, ws leaves the request to us
        r(res.statusCode ?? 0);
      }),
    );
    expect(status).toBe(404);
  });
});

describe('delete', () => {
  it('closes every channel, stream, listener and execute call the session opened', async () => {
    const start = server.channels.stats().channels;
    const r = await a.call('POST', '/sessions', { agent_id: DEV, session_type: 'Standard_Stream' });
    const id = r.json.id as string;
    const svc = await a.call('POST', `/sessions/${id}/services`, { port: webPort });
    expect(svc.status).toBe(201);
    const hold = net.connect(svc.json.local_port as number, '127.0.0.1');
    await new Promise((res) => hold.once('connect', res));
    const s = new StreamClient(r.json.stream_url as string);
    await s.start(r.json.token_value as string);
    await s.until(() => s.text('ready') !== undefined, 'ready');
    const running = a.call('POST', `/sessions/${id}/execute`, { mode: 'query', code: 'sleep 30' });
    await until(() => server.channels.stats().channels === start + 3, 'stream, port and execute channels');
    const listeningBefore = server.remote.services.listening;

    const del = await a.call('DELETE', `/sessions/${id}`);
    expect(del.status).toBe(204);
    expect((await running).json.status).toBe('interrupted');
    expect((await s.closed).code).toBe(1000);
    await until(() => server.channels.stats().channels === start, 'the session channels to close');
    expect(server.remote.services.listening).toBe(listeningBefore - 1);
    expect(await refused(svc.json.local_port as number)).toBe(true);
    await new Promise((res) => (hold.destroyed ? res(null) : hold.once('close', res)));
    expect((await a.call('GET', `/sessions/${id}`)).status).toBe(404);
    expect((await a.call('POST', `/sessions/${id}/execute`, { mode: 'query', code: 'true' })).status).toBe(
      404,
    );
  });
});

describe('status set over PATCH', () => {
  it('a terminal status ends the live session: its execute call, listener and channels close, and it runs nothing more', async () => {
    const start = server.channels.stats().channels;
    const id = await interactive();
    const svc = await a.call('POST', `/sessions/${id}/services`, { port: webPort });
    expect(svc.status).toBe(201);
    const running = a.call('POST', `/sessions/${id}/execute`, { mode: 'query', code: 'sleep 30' });
    await until(() => server.channels.stats().channels === start + 1, 'the execute channel');
    const listeningBefore = server.remote.services.listening;

    const done = await a.call('PATCH', `/sessions/${id}`, { status: 'completed', reason: 'work done' });
    expect(done.status, done.text).toBe(200);
    expect(done.json.status).toBe('completed');
    expect((await running).json.status).toBe('interrupted');
    await until(() => server.channels.stats().channels === start, 'the session channels to close');
    expect(server.remote.services.listening).toBe(listeningBefore - 1);
    expect(await refused(svc.json.local_port as number)).toBe(true);
    const after = await a.call('POST', `/sessions/${id}/execute`, { mode: 'query', code: 'true' });
    expect(after.status).toBe(409);
    expect(after.json.detail).toBe(`Session '${id}' is completed, not active: it cannot run anything`);
    const rec = (await a.call('GET', `/sessions/${id}`)).json;
    expect(rec.status_history.at(-1)).toMatchObject({ status: 'completed', reason: 'work done' });
  });

  it('paused or crashed are refused for a live session (409), which stays usable', async () => {
    const id = await interactive();
    for (const status of ['paused', 'crashed']) {
      const r = await a.call('PATCH', `/sessions/${id}`, { status });
      expect(r.status).toBe(409);
      expect(r.json.detail).toBe(
        `Session '${id}' is running: its status is the server's, and a PATCH may only end it ('completed', 'failed', 'cancelled'), not set it to '${status}'`,
      );
    }
    const run = await a.call('POST', `/sessions/${id}/execute`, { mode: 'query', code: 'echo still here' });
    expect(run.json.stdout).toBe('still here\n');
    expect((await a.call('PATCH', `/sessions/${id}`, { status: 'cancelled' })).json.status).toBe('cancelled');
  });
});

describe('delete while the device is still opening the command', () => {
  it('answers the execute call `interrupted`, not the channel reset the deletion caused', async () => {
    const id = await interactive();
    const start = server.channels.stats().channels;
    // The device is paused, so the command's channel stays unacknowledged until the session is gone.
    device.proc.kill('SIGSTOP');
    try {
      const running = a.call('POST', `/sessions/${id}/execute`, { mode: 'query', code: 'true' });
      await until(() => server.channels.stats().channels === start + 1, 'the execute channel to be opening');
      expect((await a.call('DELETE', `/sessions/${id}`)).status).toBe(204);
      const r = await running;
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ status: 'interrupted', exit_code: null, stdout: '' });
    } finally {
      device.proc.kill('SIGCONT');
    }
    await until(() => server.channels.stats().channels === start, 'the channel to be gone');
  });
});

async function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(false);
    });
    c.once('error', () => resolve(true));
  });
}

async function untar(buf: Buffer): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const ex = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, stream, next) => {
      const parts: Buffer[] = [];
      stream.on('data', (c: unknown) => parts.push(c as Buffer));
      stream.on('end', () => {
        out[h.name] = Buffer.concat(parts).toString();
        next();
      });
    });
    ex.on('finish', () => resolve());
    ex.on('error', reject);
  });
  ex.end(buf);
  await done;
  return out;
}

describe('clients and devices that leave mid-way', () => {
  const busy = async (id: string): Promise<number> => (await server.remote.sessions.get(id)).busy;

  it('answers open-ended and unsatisfiable ranges', async () => {
    const id = await interactive();
    await writeFile(path.join(root, 'ten.bin'), '0123456789');
    const from2 = await a.call('GET', `/sessions/${id}/download_single?file=ten.bin`, undefined, {
      range: 'bytes=2-',
    });
    expect(from2.status).toBe(206);
    expect(from2.text).toBe('23456789');
    expect(from2.headers.get('content-range')).toBe('bytes 2-9/10');
    for (const range of ['bytes=-0', 'bytes=10-', 'bytes=99-']) {
      const r = await a.call('GET', `/sessions/${id}/download_single?file=ten.bin`, undefined, { range });
      expect(r.status, range).toBe(416);
      expect(r.headers.get('content-range'), range).toBe('bytes */10');
    }
  });

  it('releases the channel and the session when a download, a tar or an SSE reader goes away', async () => {
    const id = await interactive();
    await writeFile(path.join(root, 'big8.bin'), Buffer.alloc(8 * 1024 * 1024, 1));
    const start = server.channels.stats().channels;
    for (const url of [
      `/sessions/${id}/download_single?file=big8.bin`,
      `/sessions/${id}/download?files=big8.bin`,
    ]) {
      const ctl = new AbortController();
      const r = await fetch(`${base}${url}`, { headers: { 'x-api-key': TEST_KEY }, signal: ctl.signal });
      const reader = r.body!.getReader();
      await reader.read();
      ctl.abort();
      await until(() => server.channels.stats().channels === start, `${url}: its channel to close`);
      await until(async () => (await busy(id)) === 0, `${url}: the session to be idle`);
    }
    const ctl = new AbortController();
    await fetch(`${base}/sessions/${id}/execute`, {
      method: 'POST',
      headers: { 'x-api-key': TEST_KEY, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ mode: 'query', code: 'yes' }),
      signal: ctl.signal,
    });
    ctl.abort();
    await until(
      async () => (await server.remote.sessions.get(id)).execution === null,
      'the run to be interrupted',
    );
    const next = await a.call('POST', `/sessions/${id}/execute`, { mode: 'query', code: 'echo free' });
    expect(next.json).toMatchObject({ status: 'finished', stdout: 'free\n' });
  });

  it('releases an upload whose client aborts mid-body', async () => {
    const id = await interactive();
    const start = server.channels.stats().channels;
    const req = http.request({
      method: 'POST',
      host: '127.0.0.1',
      port: server.port,
      path: `/sessions/${id}/upload`,
      headers: { 'x-api-key': TEST_KEY, 'content-type': 'multipart/form-data; boundary=xx' },
    });
    req.on('error', () => undefined);
    req.write('--xx\r\nContent-Disposition: form-data; name="f"; filename="half.bin"\r\n\r\n');
    req.write(Buffer.alloc(512 * 1024, 2));
    await until(() => server.channels.stats().channels === start + 1, 'the upload channel');
    req.destroy();
    await until(() => server.channels.stats().channels === start, 'the upload channel to close');
    await until(async () => (await busy(id)) === 0, 'the session to be idle');
  });

  it('says a directory is a directory when it is downloaded as a file or uploaded onto', async () => {
    const id = await interactive();
    await mkdir(path.join(root, 'a-dir'), { recursive: true });
    const down = await a.call('GET', `/sessions/${id}/download_single?file=a-dir`);
    expect(down.status).toBe(400);
    expect(down.json.detail).toBe("'a-dir' is a directory, not a file");
    const form = new FormData();
    form.append('f', new Blob(['x']), 'a-dir');
    const up = await fetch(`${base}/sessions/${id}/upload`, {
      method: 'POST',
      headers: { 'x-api-key': TEST_KEY },
      body: form,
    });
    expect(up.status).toBe(400);
    expect(((await up.json()) as { detail: string }).detail).toBe("'a-dir' is a directory, not a file");
  });

  it('names the files an upload wrote before it failed, and writes none after', async () => {
    const id = await interactive();
    await mkdir(path.join(root, 'part', 'b-dir'), { recursive: true });
    const form = new FormData();
    form.append('f1', new Blob(['one']), 'first.txt');
    form.append('f2', new Blob(['x']), 'b-dir');
    form.append('f3', new Blob(['three']), 'third.txt');
    const up = await fetch(`${base}/sessions/${id}/upload?path=part`, {
      method: 'POST',
      headers: { 'x-api-key': TEST_KEY },
      body: form,
    });
    expect(up.status).toBe(400);
    expect(await up.json()).toEqual({
      detail: "'part/b-dir' is a directory, not a file",
      written: [{ filename: 'first.txt', path: 'part/first.txt', size: 3, sha256: sha('one') }],
    });
    expect(await readFile(path.join(root, 'part', 'first.txt'), 'utf8')).toBe('one');
    await expect(readFile(path.join(root, 'part', 'third.txt'))).rejects.toThrow(/ENOENT/);
    // A body cut short after a whole file: that file is in place, and the answer says so.
    await until(async () => (await busy(id)) === 0, 'the session to be idle');
    const cut = await fetch(`${base}/sessions/${id}/upload?path=part`, {
      method: 'POST',
      headers: { 'x-api-key': TEST_KEY, 'content-type': 'multipart/form-data; boundary=XX' },
      body:
        '--XX\r\nContent-Disposition: form-data; name="f"; filename="kept.txt"\r\n\r\nkept\r\n' +
        '--XX\r\nContent-Disposition: form-data; name="g"; filename="lost.txt"\r\n\r\nlo',
    });
    expect(cut.status).toBe(400);
    expect(await cut.json()).toEqual({
      detail: 'Invalid multipart/form-data body: Unexpected end of form',
      written: [{ filename: 'kept.txt', path: 'part/kept.txt', size: 4, sha256: sha('kept') }],
    });
    expect(await readFile(path.join(root, 'part', 'kept.txt'), 'utf8')).toBe('kept');
    await expect(readFile(path.join(root, 'part', 'lost.txt'))).rejects.toThrow(/ENOENT/);
  });

  it('answers 400 to a multipart body that ends without its closing boundary, and goes on serving', async () => {
    const id = await interactive();
    const r = await fetch(`${base}/sessions/${id}/upload`, {
      method: 'POST',
      headers: { 'x-api-key': TEST_KEY, 'content-type': 'multipart/form-data; boundary=XX' },
      body: '--XX\r\nContent-Disposition: form-data; name="f"; filename="cut.txt"\r\n\r\nabc',
    });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { detail: string }).detail).toBe(
      'Invalid multipart/form-data body: Unexpected end of form',
    );
    await until(async () => (await busy(id)) === 0, 'the session to be idle');
    const up = await fetch(`${base}/sessions/${id}/upload`, {
      method: 'POST',
      headers: { 'x-api-key': TEST_KEY, 'content-type': 'multipart/form-data; boundary=XX' },
      body: '--XX\r\nContent-Disposition: form-data; name="f"; filename="whole.txt"\r\n\r\nabc\r\n--XX--\r\n',
    });
    expect(up.status).toBe(200);
    expect(await readFile(path.join(root, 'whole.txt'), 'utf8')).toBe('abc');
  });

  it('survives clients that leave before their first file part is read', async () => {
    const id = await interactive();
    for (let i = 0; i < 20; i++) {
      const sock = net.connect(server.port, '127.0.0.1');
      sock.on('error', () => undefined);
      await new Promise((r) => sock.once('connect', r));
      sock.write(
        `POST /sessions/${id}/upload HTTP/1.1\r\nHost: x\r\nX-API-Key: ${TEST_KEY}\r\n` +
          'Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 100000\r\n\r\n' +
          `--XX\r\nContent-Disposition: form-data; name="f"; filename="gone-${i}.txt"\r\n\r\nabc`,
      );
      await new Promise((r) => setTimeout(r, i % 5));
      sock.destroy();
    }
    await until(async () => (await busy(id)) === 0, 'the session to be idle');
    expect((await a.call('GET', `/sessions/${id}`)).status).toBe(200);
  });

  it('survives a device that dies during a tar download', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'aipd-remote-dying-'));
    await writeFile(path.join(dir, 'big.bin'), Buffer.alloc(16 * 1024 * 1024, 3));
    const dying = await startDevice(base, TEST_KEY, 'dying-dev', ['--root', dir]);
    try {
      const r0 = await a.call('POST', '/sessions', { agent_id: 'dying-dev', session_type: 'interactive' });
      const r = await fetch(`${base}/sessions/${r0.json.id}/download?files=big.bin`, {
        headers: { 'x-api-key': TEST_KEY },
      });
      const reader = r.body!.getReader();
      await reader.read();
      dying.proc.kill('SIGKILL');
      await expect(
        (async () => {
          for (;;) if ((await reader.read()).done) return;
        })(),
      ).rejects.toThrow();
      expect((await a.call('GET', '/healthz')).status).toBe(200);
    } finally {
      await dying.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
