/**
 * The middle test tier: a whole aipd (directory, tasks, sessions, HTTP router, event bus) started with the
 * in-memory transport, so tests drive it through `MemoryClient`s and `inject()` with no socket at all.
 * Always `close()` it in teardown.
 */
import type { ServerMessage } from '../../protocol/index.js';
import { startServer, type RunningServer, type StartOptions } from '../../src/app/server.js';
import type { ServerConfigInput } from '../../src/config.js';
import { silentLogger } from '../../src/logger.js';
import type { InjectResponse, MemoryTransport } from '../../src/transport/memory.js';
import { TEST_KEY } from '../helpers/aip-server.js';
import { MemoryClient, type Codec, type ConnectOptions } from './memory-client.js';

export { planRequest, TEST_KEY } from '../helpers/aip-server.js';

export interface ApiOptions {
  /** Any value is sent as JSON unless it is a string or bytes. */
  body?: unknown;
  /** The X-API-Key header: the test key by default, `null` to send none. */
  key?: string | null;
}

export class MemoryHarness {
  readonly memory: MemoryTransport;
  readonly clients: MemoryClient[] = [];

  constructor(readonly server: RunningServer) {
    if (!server.memory) throw new Error('server was not started with the memory transport');
    this.memory = server.memory;
  }

  /** Opens a client connection (throws `RefusedError` when refused). */
  connect(codec: Codec = 'json', opts: ConnectOptions = {}): MemoryClient {
    const c = MemoryClient.connect(this.memory, TEST_KEY, codec, opts);
    this.clients.push(c);
    return c;
  }

  /** A registered device, with `system_info` carrying its id and a hostname. */
  async device(id: string, opts: { platform?: string; codec?: Codec } = {}): Promise<MemoryClient> {
    const d = this.connect(opts.codec ?? 'json');
    const reply = await d.register(id, {
      metadata: {
        platform: opts.platform ?? 'linux',
        system_info: { device_id: id, hostname: `host-${id}` },
      },
    });
    expectAck(reply, id);
    return d;
  }

  /** A registered constellation, optionally declaring its target device. */
  async constellation(id: string, target: string | null, codec: Codec = 'json'): Promise<MemoryClient> {
    const k = this.connect(codec);
    expectAck(await k.register(id, { client_type: 'constellation', target_id: target }), id);
    return k;
  }

  /** One HTTP request through the server's router, with the test key unless told otherwise. */
  api(method: string, url: string, opts: ApiOptions = {}): Promise<InjectResponse> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    const key = opts.key === undefined ? TEST_KEY : opts.key;
    if (key !== null) headers['x-api-key'] = key;
    return this.memory.inject({ method, url, headers, body: opts.body });
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

function expectAck(reply: ServerMessage, id: string): void {
  if (reply.type !== 'heartbeat' || reply.status !== 'ok')
    throw new Error(`registration of '${id}' failed: ${JSON.stringify(reply)}`);
}

/** Starts aipd on the memory transport: port 0, the test key, a silent logger, short shutdown grace. */
export async function startMemoryServer(
  config: ServerConfigInput = {},
  opts: StartOptions = {},
): Promise<MemoryHarness> {
  const server = await startServer(
    {
      port: 0,
      host: '127.0.0.1',
      apiKey: TEST_KEY,
      logLevel: 'silent',
      shutdownGraceMs: 200,
      store: 'memory',
      ...config,
    },
    { logger: silentLogger(), ...opts, transport: 'memory' },
  );
  return new MemoryHarness(server);
}

/**
 * Lets every pending microtask run (the session store's chained writes land a few microtasks after the frames
 * that announce them; over a real socket the network hides that, in-process it does not).
 */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** Polls `cond` every few ms until it holds (throws after `ms`). */
export async function waitFor(cond: () => boolean, ms = 1000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 2));
  }
}
