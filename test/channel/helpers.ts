/** Test doubles for channel tests: an async in-order wire, fake Connections, and a router harness. */
import { jsonCodec } from '../../protocol/index.js';
import { ChannelMux, type IncomingChannel } from '../../src/channel/mux.js';
import { ChannelRouter, type ChannelHost } from '../../src/channel/router.js';
import type { ChannelPeer } from '../../src/channel/router.js';

/** Delivers frames on a later macrotask, in order, like a socket would. */
export function laterInOrder(deliver: (f: Uint8Array) => void): {
  send: (f: Uint8Array) => boolean;
  pending: () => number;
} {
  const q: Uint8Array[] = [];
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    const batch = q.splice(0);
    for (const f of batch) deliver(f);
  };
  return {
    send: (f) => {
      q.push(f);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
      return true;
    },
    pending: () => q.reduce((n, f) => n + f.byteLength, 0),
  };
}

export class FakeConnection implements ChannelPeer {
  readonly codec = jsonCodec;
  readonly remoteAddress = '127.0.0.1';
  closed = false;
  readonly sent: Uint8Array[] = [];
  /** Where sent frames go (the client's mux); unset = only recorded. */
  deliver: ((f: Uint8Array) => void) | null = null;
  private wire = laterInOrder((f) => this.deliver?.(f));
  constructor(readonly id: string) {}
  send(): boolean {
    return !this.closed;
  }
  sendRaw(data: string | Uint8Array, isBinary: boolean): boolean {
    if (this.closed) return false;
    if (typeof data === 'string' || !isBinary) throw new Error('channel frames must be binary');
    this.sent.push(data);
    if (this.deliver) this.wire.send(data);
    return true;
  }
  bufferedBytes(): number {
    return this.wire.pending();
  }
  close(): void {
    this.closed = true;
  }
}

export interface Harness {
  router: ChannelRouter;
  controllerConn: FakeConnection;
  deviceConn: FakeConnection;
  controller: ChannelMux;
  device: ChannelMux;
  sessions: Map<string, { requesterId: string; executorId: string }>;
}

/** controller mux ⇄ router ⇄ device mux, in session 's1' (requester 'ctl', executor 'dev'). */
export function harness(
  opts: {
    onDeviceOpen?: (i: IncomingChannel) => void;
    onControllerOpen?: (i: IncomingChannel) => void;
    window?: number;
    maxWindow?: number;
    maxChunk?: number;
  } = {},
): Harness {
  const controllerConn = new FakeConnection('c-ctl');
  const deviceConn = new FakeConnection('c-dev');
  const byClient = new Map<string, FakeConnection>([
    ['ctl', controllerConn],
    ['dev', deviceConn],
  ]);
  const sessions = new Map([['s1', { requesterId: 'ctl', executorId: 'dev' }]]);
  const host: ChannelHost = {
    clientIdOf: (c) => [...byClient].find(([, v]) => v === c)?.[0] ?? null,
    sessionParties: (sid) => sessions.get(sid) ?? null,
    connectionOf: (id) => byClient.get(id) ?? null,
  };
  const router = new ChannelRouter(host, { maxWindow: opts.maxWindow });
  const toRouterFromCtl = laterInOrder((f) => router.onFrame(controllerConn, f));
  const toRouterFromDev = laterInOrder((f) => router.onFrame(deviceConn, f));
  const controller = new ChannelMux({
    send: (f) => !controllerConn.closed && toRouterFromCtl.send(f),
    side: 'client',
    receiveWindow: opts.window,
    maxChunk: opts.maxChunk,
    onOpen: opts.onControllerOpen,
  });
  const device = new ChannelMux({
    send: (f) => !deviceConn.closed && toRouterFromDev.send(f),
    side: 'client',
    receiveWindow: opts.window,
    maxChunk: opts.maxChunk,
    onOpen: opts.onDeviceOpen,
  });
  controllerConn.deliver = (f) => controller.handleFrame(f);
  deviceConn.deliver = (f) => device.handleFrame(f);
  return { router, controllerConn, deviceConn, controller, device, sessions };
}

/** Waits until `cond` holds (polling on macrotasks), or fails after `ms`. */
export async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

export function randomBytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
