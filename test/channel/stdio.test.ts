/** Stdio stream channels (framing "stdio") between an in-process controller and the device's handler. */
import { mkdtemp, mkdir, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StdioDecoder, StdioTag, encodeResize, encodeStdio } from '../../protocol/stdio.js';
import type { ChannelEndpoint } from '../../src/channel/endpoint.js';
import type { IncomingChannel } from '../../src/channel/mux.js';
import { createDeviceChannelHandler, type DeviceChannelOptions } from '../../src/client/channels/device.js';
import { ptyAvailable } from '../../src/client/channels/pty.js';
import { ProcessGroups } from '../../src/client/process-group.js';
import { harness, until, type Harness } from './helpers.js';
import { alive } from '../helpers/process.js';

interface Run {
  readonly ep: ChannelEndpoint;
  readonly out: { stdout: string; stderr: string };
  /** The FIN trailer; rejects if the channel is reset. */
  readonly done: Promise<Record<string, unknown> | null>;
  send(tag: StdioTag, payload?: string | Uint8Array): Promise<void>;
}

async function openStdio(h: Harness, params: Record<string, unknown>): Promise<Run> {
  const ep = await h.controller.open({
    session_id: 's1',
    kind: 'stream',
    params: { framing: 'stdio', ...params },
  });
  const out = { stdout: '', stderr: '' };
  const dec = new StdioDecoder();
  const done = (async () => {
    for (;;) {
      const c = await ep.read();
      if (c === null) return ep.trailer;
      const recs = dec.push(c);
      if (!Array.isArray(recs)) throw recs;
      for (const r of recs) {
        if (r.tag === StdioTag.STDOUT) out.stdout += Buffer.from(r.payload).toString();
        else if (r.tag === StdioTag.STDERR) out.stderr += Buffer.from(r.payload).toString();
        else throw new Error(`unexpected tag ${r.tag}`);
      }
    }
  })();
  done.catch(() => undefined);
  return { ep, out, done, send: (tag, payload) => ep.write(encodeStdio(tag, payload)) };
}

let tmp: string;
let root: string;
let h: Harness;
let groups: ProcessGroups;
/** Endpoints the device accepted (to look at its side of the flow control). */
let deviceEps: ChannelEndpoint[];

function makeHarness(opts: Partial<DeviceChannelOptions> = {}): Harness {
  const handler = createDeviceChannelHandler({ fileRoot: root, stream: { groups }, ...opts });
  return harness({
    onDeviceOpen: (incoming: IncomingChannel) => {
      handler({
        ...incoming,
        accept: () => {
          const ep = incoming.accept();
          deviceEps.push(ep);
          return ep;
        },
        reject: (e) => incoming.reject(e),
      });
    },
    window: 64 * 1024,
    maxChunk: 16 * 1024,
  });
}

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'aipd-stdio-'));
  root = path.join(tmp, 'root');
  await mkdir(path.join(root, 'sub'), { recursive: true });
  groups = new ProcessGroups();
  deviceEps = [];
  h = makeHarness();
});
afterEach(async () => {
  groups.killAll();
  h.controller.closeAll();
  h.device.closeAll();
  await rm(tmp, { recursive: true, force: true });
});

describe('stdio stream channels: pipes', () => {
  it('keeps stdout and stderr apart and ends with the exit code', async () => {
    const r = await openStdio(h, { command: 'echo out; echo err 1>&2; exit 3', shell: true });
    await r.ep.end();
    expect(await r.done).toEqual({ exit_code: 3, signal: null, pty: false });
    expect(r.out).toEqual({ stdout: 'out\n', stderr: 'err\n' });
    await until(() => h.router.stats().channels === 0 && h.device.size === 0);
    expect(groups.size).toBe(0);
  });

  it('runs a program with args (no shell), with env merged over the device env', async () => {
    const r = await openStdio(h, {
      command: 'sh',
      args: ['-c', 'printf "%s-%s" "$1" "$FOO"', 'x', 'a'],
      env: { FOO: 'b' },
    });
    expect(await r.done).toMatchObject({ exit_code: 0 });
    expect(r.out.stdout).toBe('a-b');
  });

  it('feeds STDIN to `cat` and closes it at EOF', async () => {
    const r = await openStdio(h, { command: 'cat' });
    await r.send(StdioTag.STDIN, 'line one\n');
    await r.send(StdioTag.STDIN, 'line two\n');
    await r.send(StdioTag.EOF);
    expect(await r.done).toEqual({ exit_code: 0, signal: null, pty: false });
    expect(r.out.stdout).toBe('line one\nline two\n');
    await r.ep.end();
    await until(() => h.device.size === 0);
  });

  it('delivers a SIGNAL record to the process group', async () => {
    const r = await openStdio(h, { command: 'echo ready; exec sleep 30', shell: true });
    await until(() => r.out.stdout === 'ready\n');
    await r.send(StdioTag.SIGNAL, 'SIGTERM');
    expect(await r.done).toEqual({ exit_code: null, signal: 'SIGTERM', pty: false });
  });

  it('a RESET kills the whole process group: the shell and its `sleep` child', async () => {
    const r = await openStdio(h, { command: 'sleep 30 & echo $$ $!; wait', shell: true });
    await until(() => r.out.stdout.endsWith('\n'));
    const [shPid, sleepPid] = r.out.stdout.trim().split(' ').map(Number);
    expect(alive(shPid!) && alive(sleepPid!)).toBe(true);
    r.ep.reset();
    await until(() => !alive(shPid!) && !alive(sleepPid!), 20_000);
    await until(() => h.device.size === 0 && groups.size === 0);
  });

  it('a bad record resets the channel with STDIO_BAD_RECORD and kills the process', async () => {
    const r = await openStdio(h, { command: 'echo $$; exec sleep 30', shell: true });
    await until(() => r.out.stdout.endsWith('\n'));
    const pid = Number(r.out.stdout.trim());
    await r.send(StdioTag.SIGNAL, 'SIGSEGV');
    await expect(r.done).rejects.toMatchObject({ code: 7042 });
    await until(() => !alive(pid), 20_000);
    const r2 = await openStdio(h, { command: 'cat' });
    await r2.ep.write(Uint8Array.of(9, 0, 0, 0, 0));
    await expect(r2.done).rejects.toMatchObject({ code: 7042 });
  });

  it('a slow reader holds the output back instead of the device buffering it', async () => {
    const ep = await h.controller.open({
      session_id: 's1',
      kind: 'stream',
      params: { framing: 'stdio', command: 'head -c 8000000 /dev/zero', shell: true },
    });
    // Read nothing yet: the device fills the 64 KiB window, then pauses the child's output.
    const dev = deviceEps[0]!;
    await until(() => dev.stats().inFlight === 64 * 1024);
    for (let i = 0; i < 50; i++) await new Promise((res) => setImmediate(res));
    expect(dev.stats().inFlight).toBe(64 * 1024);
    expect(dev.stats().pendingWrites).toBeLessThanOrEqual(2);
    const dec = new StdioDecoder();
    let bytes = 0;
    for (let c = await ep.read(); c !== null; c = await ep.read()) {
      const recs = dec.push(c);
      if (!Array.isArray(recs)) throw recs;
      for (const r of recs) bytes += r.payload.byteLength;
    }
    expect(bytes).toBe(8_000_000);
    expect(ep.trailer).toEqual({ exit_code: 0, signal: null, pty: false });
    expect(dev.stats().maxInFlight).toBeLessThanOrEqual(64 * 1024);
  });

  it('confines cwd to the root and starts there by default', async () => {
    const real = await realpath(root);
    const r = await openStdio(h, { command: 'pwd' });
    await r.done;
    expect(r.out.stdout).toBe(`${real}\n`);
    const r2 = await openStdio(h, { command: 'pwd', cwd: 'sub' });
    await r2.done;
    expect(r2.out.stdout).toBe(`${path.join(real, 'sub')}\n`);
    await expect(openStdio(h, { command: 'pwd', cwd: '../' })).rejects.toMatchObject({ code: 7020 });
    await expect(openStdio(h, { command: 'pwd', cwd: '/tmp' })).rejects.toMatchObject({ code: 7020 });
    await expect(openStdio(h, { command: 'pwd', cwd: 'nope' })).rejects.toMatchObject({ code: 7021 });
  });

  it('refuses bad params, a missing program, and everything when exec is disabled', async () => {
    await expect(openStdio(h, { mode: 'batch' })).rejects.toMatchObject({ code: 7015 });
    await expect(openStdio(h, { command: 'x', pty: { rows: 0, cols: 80 } })).rejects.toMatchObject({
      code: 7015,
    });
    await expect(openStdio(h, { command: 'x', env: { A: 1 } })).rejects.toMatchObject({ code: 7015 });
    await expect(openStdio(h, { command: '/nonexistent/prog' })).rejects.toMatchObject({ code: 7040 });
    h = makeHarness({ stream: false });
    await expect(openStdio(h, { command: 'echo hi', shell: true })).rejects.toMatchObject({
      code: 7041,
      message: expect.stringContaining('--allow-exec'),
    });
    await expect(
      h.controller.open({ session_id: 's1', kind: 'stream', params: { command: 'ls' } }),
    ).rejects.toMatchObject({ code: 7041 });
  });
});

describe('stdio stream channels: PTY', () => {
  it('runs `stty size` after a RESIZE to 30×100 (or falls back to pipes when node-pty cannot load)', async () => {
    const hasPty = await ptyAvailable();
    const r = await openStdio(h, {
      command: 'read line; stty size',
      shell: true,
      pty: { rows: 24, cols: 80 },
    });
    await r.ep.write(encodeResize(30, 100));
    await r.send(StdioTag.STDIN, '\n');
    const trailer = await r.done;
    if (!hasPty) {
      // Pipes: stty has no terminal to ask.
      expect(trailer).toMatchObject({ pty: false });
      return;
    }
    expect(trailer).toEqual({ exit_code: 0, signal: null, pty: true });
    expect(r.out.stdout).toMatch(/(^|\n)30 100\r\n$/);
    expect(r.out.stderr).toBe('');
  });

  it.runIf(process.platform !== 'win32')('runs the user shell, and reports its exit code', async () => {
    const r = await openStdio(h, {
      mode: 'shell',
      pty: { rows: 24, cols: 80 },
      env: { SHELL: '/bin/sh', PS1: '$ ' },
    });
    await r.send(StdioTag.STDIN, 'echo hi-$((40+2))\n');
    await until(() => r.out.stdout.includes('hi-42'));
    await r.send(StdioTag.STDIN, 'exit 3\n');
    expect(await r.done).toMatchObject({ exit_code: 3, signal: null });
  });

  it('a RESET kills the PTY session, including a job the shell started', async () => {
    const r = await openStdio(h, {
      command: 'sleep 30 & echo pids $$ $!; wait',
      shell: true,
      pty: { rows: 24, cols: 80 },
    });
    await until(() => /pids \d+ \d+\r\n/.test(r.out.stdout));
    const [, shPid, sleepPid] = /pids (\d+) (\d+)/.exec(r.out.stdout)!.map(Number);
    r.ep.reset();
    await until(() => !alive(shPid!) && !alive(sleepPid!), 20_000);
  });

  it.runIf(process.platform === 'linux')(
    "delivers a PTY's output whole up to its exit, with a reader that keeps up and one that stalls",
    async () => {
      if (!(await ptyAvailable())) return;
      const expected = Array.from({ length: 200_000 }, (_, i) => `${i + 1}\r\n`).join('');
      for (const stall of [false, true]) {
        deviceEps = [];
        const ep = await h.controller.open({
          session_id: 's1',
          kind: 'stream',
          params: { framing: 'stdio', command: 'seq 1 200000', shell: true, pty: { rows: 24, cols: 80 } },
        });
        if (stall) await until(() => deviceEps[0]?.stats().inFlight === 64 * 1024);
        const dec = new StdioDecoder();
        const parts: Buffer[] = [];
        for (let c = await ep.read(); c !== null; c = await ep.read()) {
          const recs = dec.push(c);
          if (!Array.isArray(recs)) throw recs;
          for (const r of recs) parts.push(Buffer.from(r.payload));
        }
        expect(Buffer.concat(parts).toString() === expected, `stall=${stall}`).toBe(true);
        expect(ep.trailer).toEqual({ exit_code: 0, signal: null, pty: true });
      }
    },
  );

  it('falls back to pipes, reporting pty:false, when node-pty cannot load', async () => {
    h = makeHarness({ stream: { groups, loadPty: () => Promise.resolve(null) } });
    const r = await openStdio(h, {
      command: 'echo hi; tty -s || echo no-tty 1>&2',
      shell: true,
      pty: { rows: 5, cols: 5 },
    });
    expect(await r.done).toEqual({ exit_code: 0, signal: null, pty: false });
    expect(r.out).toEqual({ stdout: 'hi\n', stderr: 'no-tty\n' });
  });

  it('a missing program is refused, not run', async () => {
    await expect(
      openStdio(h, { command: '/nonexistent/prog', pty: { rows: 24, cols: 80 } }),
    ).rejects.toMatchObject({
      code: 7040,
    });
  });
});
