/**
 * End-to-end plumbing: a controller and a device client (src/client) with a ChannelMux each, joined by a live
 * constellation task whose only command the device holds until released, so the session stays live while
 * channels run. Also: an `aipd serve` child process (for RSS measurements), socket pausing, byte pacing.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { ResultInput } from '../../protocol/index.js';
import type { ChannelMux, IncomingChannel } from '../../src/channel/mux.js';
import { AipControllerClient, AipDeviceClient } from '../../src/client/index.js';
import { attachChannelMux } from '../../src/client/channels/attach.js';
import { planRequest } from '../helpers/aip-server.js';

export interface LivePair {
  readonly device: AipDeviceClient;
  readonly controller: AipControllerClient;
  readonly deviceMux: ChannelMux;
  readonly controllerMux: ChannelMux;
  readonly sessionId: string;
  /** Lets the held command finish (the task then completes and its channels close). */
  release(): void;
  close(): Promise<void>;
}

export interface PairOptions {
  /** ws://host:port/ws (the token is added by the clients). */
  readonly url: string;
  readonly token: string;
  readonly deviceId: string;
  readonly deviceOnOpen?: (incoming: IncomingChannel) => void;
  readonly deviceWindow?: number;
  readonly controllerWindow?: number;
  readonly controllerOnOpen?: (incoming: IncomingChannel) => void;
  /** Where the controller connects, when not `url` (another node of a cluster). */
  readonly controllerUrl?: string;
  /** Runs once the device is registered, before the controller connects (e.g. wait for a cluster's view). */
  readonly beforeController?: () => Promise<void>;
}

/** Registers a device and its controller, and starts a one-step plan task whose command the device holds. */
export async function livePair(o: PairOptions): Promise<LivePair> {
  let release: () => void = () => undefined;
  const held = new Promise<void>((r) => (release = r));
  const onCommand = async (): Promise<ResultInput[]> => {
    await held;
    return [{ status: 'success', result: 'released' }];
  };
  const device = new AipDeviceClient({
    url: o.url,
    token: o.token,
    clientId: o.deviceId,
    reconnect: false,
    onCommand,
  });
  const controller = new AipControllerClient({
    url: o.controllerUrl ?? o.url,
    token: o.token,
    clientId: `k@${o.deviceId}`,
    targetId: o.deviceId,
    reconnect: false,
  });
  device.on('error', () => undefined);
  controller.on('error', () => undefined);
  const deviceMux = attachChannelMux(device, { receiveWindow: o.deviceWindow, onOpen: o.deviceOnOpen });
  const controllerMux = attachChannelMux(controller, {
    receiveWindow: o.controllerWindow,
    onOpen: o.controllerOnOpen,
  });
  await device.connect();
  await o.beforeController?.();
  await controller.connect();
  const { sessionId } = await controller.requestTask({
    request: planRequest(1, 'hold'),
    sessionId: `s@${o.deviceId}`,
  });
  return {
    device,
    controller,
    deviceMux,
    controllerMux,
    sessionId,
    release,
    close: async () => {
      release();
      await Promise.all([controller.close(), device.close()]);
    },
  };
}

type WithSocket = { conn: { ws: { _socket: Socket; terminate(): void } | null } };

/** The TCP socket under a client's registered WebSocket (test-only reach into the `ws` internals). */
export function clientSocket(client: AipDeviceClient | AipControllerClient): Socket {
  const ws = (client as unknown as WithSocket).conn.ws;
  if (!ws) throw new Error('client has no open socket');
  return ws._socket;
}

/** Kills a client's socket without a close handshake (like a crashed process). */
export function terminateClient(client: AipDeviceClient | AipControllerClient): void {
  (client as unknown as WithSocket).conn.ws?.terminate();
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** VmRSS of a process, bytes. */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

export interface SpawnedAipd {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');

/** `aipd serve --port 0` in its own process; resolves once it printed its listening line. */
export function spawnAipd(apiKey: string, extra: string[] = []): Promise<SpawnedAipd> {
  const proc = spawn(process.execPath, [
    '--import',
    'tsx',
    MAIN,
    'serve',
    '--port',
    '0',
    '--api-key',
    apiKey,
    '--log-level',
    'silent',
    '--store',
    'memory',
    ...extra,
  ]);
  let out = '';
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`aipd did not start: ${out} ${err}`));
    }, 20_000);
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /aipd listening on ws:\/\/([\d.]+):(\d+)\/ws/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, pid: proc.pid!, port: Number(m[2]), url: `ws://${m[1]}:${m[2]}/ws`, stop });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`aipd exited (${code}): ${err}`));
    });
  });
}

/**
 * Drains an endpoint-like source at `bytesPerSec` (token bucket, 10 ms ticks), handing each chunk to `onChunk`.
 * `take()` returns a chunk, null at the end, or undefined when nothing is queued. Resolves at the end.
 */
export function pacedDrain(
  take: () => Uint8Array | null | undefined,
  bytesPerSec: number,
  onChunk: (c: Uint8Array) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let budget = 0;
    let last = performance.now();
    const tick = (): void => {
      const now = performance.now();
      budget = Math.min(budget + ((now - last) / 1000) * bytesPerSec, bytesPerSec / 10 + 64 * 1024);
      last = now;
      try {
        while (budget > 0) {
          const c = take();
          if (c === undefined) break;
          if (c === null) {
            clearInterval(timer);
            resolve();
            return;
          }
          budget -= c.byteLength;
          onChunk(c);
        }
      } catch (e) {
        clearInterval(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    };
    const timer = setInterval(tick, 10);
  });
}

/** Reads an endpoint as fast as chunks arrive; resolves with the byte count at the end of stream. */
export function drainAll(
  ep: { take(): Uint8Array | null | undefined; onReadable(l: () => void): void },
  onChunk?: (c: Uint8Array) => void,
): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    let done = false;
    const pull = (): void => {
      if (done) return;
      try {
        for (;;) {
          const c = ep.take();
          if (c === undefined) return;
          if (c === null) {
            done = true;
            return resolve(n);
          }
          n += c.byteLength;
          onChunk?.(c);
        }
      } catch (e) {
        done = true;
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    };
    ep.onReadable(pull);
    pull();
  });
}
