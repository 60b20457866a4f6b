/** Real-process helpers for the remote-execution tests: a real `aipd device` child, HTTP calls, a stream client. */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { aipdProcess, collect, type Collected } from '../helpers/cli-process.js';

export interface DeviceProc {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly io: Collected;
  stop(): Promise<void>;
}

/** Spawns `aipd device` against `wsUrl` and waits until the server lists it. */
export async function startDevice(
  base: string,
  key: string,
  clientId: string,
  flags: string[],
): Promise<DeviceProc> {
  const wsUrl = `${base.replace(/^http/, 'ws')}/ws`;
  // A shell session runs $SHELL: /bin/sh, so no test waits on this machine's rc files (an interactive bash here
  // reads a .bashrc that takes a minute).
  const proc = aipdProcess(['device', '--url', wsUrl, '--token', key, '--client-id', clientId, ...flags], {
    SHELL: '/bin/sh',
  });
  const io = collect(proc);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await fetch(`${base}/api/clients`, { headers: { 'x-api-key': key } });
    const online = (await r.json()) as { online_clients?: string[] };
    if (online.online_clients?.includes(clientId)) break;
    if (proc.exitCode !== null) throw new Error(`device exited ${proc.exitCode}: ${io.err()} ${io.out()}`);
    if (Date.now() > deadline) throw new Error(`device did not register: ${io.err()} ${io.out()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
  return {
    proc,
    io,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await io.exit;
      clearTimeout(t);
    },
  };
}

/** A real aipd and a real `aipd device` whose --root is a fresh temporary folder; `stop()` ends both and removes it. */
export interface DeviceServer {
  readonly server: Awaited<ReturnType<typeof startTestServer>>;
  readonly device: DeviceProc;
  readonly root: string;
  readonly base: string;
  readonly api: Api;
  /** A new `interactive` session on the device: its id. */
  interactive(): Promise<string>;
  stop(): Promise<void>;
}

export async function startDeviceServer(clientId: string, flags: string[] = []): Promise<DeviceServer> {
  const root = await mkdtemp(path.join(os.tmpdir(), `aipd-${clientId}-`));
  const server = await startTestServer();
  const base = `http://127.0.0.1:${server.port}`;
  const a = api(base, TEST_KEY);
  const device = await startDevice(base, TEST_KEY, clientId, ['--root', root, ...flags]);
  return {
    server,
    device,
    root,
    base,
    api: a,
    interactive: async () => {
      const r = await a.call('POST', '/sessions', { agent_id: clientId, session_type: 'interactive' });
      if (r.status !== 201) throw new Error(`no interactive session: ${r.status} ${r.text}`);
      return r.json.id as string;
    },
    stop: async () => {
      await device.stop();
      await server.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export interface Api {
  call(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test answers are read field by field
  ): Promise<{ status: number; json: any; text: string; headers: Headers }>;
}

export function api(base: string, key: string): Api {
  return {
    async call(method, path, body, headers = {}) {
      const r = await fetch(`${base}${path}`, {
        method,
        headers: {
          'x-api-key': key,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: r.status, json, text, headers: r.headers };
    },
  };
}

/** A client of a session's stream WebSocket (aipd.stream.v1). */
export class StreamClient {
  readonly ws: WebSocket;
  stdout = '';
  stderr = '';
  readonly texts: Record<string, unknown>[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly opened: Promise<void>;

  constructor(url: string) {
    this.ws = new WebSocket(url, ['aipd.stream.v1']);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) =>
      this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    this.ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) this.texts.push(JSON.parse(data.toString()) as Record<string, unknown>);
      else if (data[0] === 1) this.stdout += data.subarray(1).toString();
      else if (data[0] === 2) this.stderr += data.subarray(1).toString();
    });
  }

  async start(token: string, size?: { rows: number; cols: number }): Promise<void> {
    await this.opened;
    this.ws.send(JSON.stringify({ token, ...size }));
  }

  text(type: string): Record<string, unknown> | undefined {
    return this.texts.find((t) => t.type === type);
  }

  async until(pred: () => boolean, what: string, ms = 15_000): Promise<void> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end)
        throw new Error(
          `timed out waiting for ${what}; stdout=${JSON.stringify(this.stdout)} texts=${JSON.stringify(this.texts)}`,
        );
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  input(s: string): void {
    this.ws.send(Buffer.from(s));
  }

  control(msg: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(msg));
  }
}

export { until } from '../helpers/process.js';
