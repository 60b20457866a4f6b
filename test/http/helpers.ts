/**
 * Helpers for the REST tests over real HTTP: a server per test on a fresh store of each kind (memory, a SQLite
 * file in a temporary folder, a schema of a throwaway PostgreSQL database), and a small fetch-based client.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningServer } from '../../src/app/server.js';
import type { ServerConfigInput } from '../../src/config.js';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';

export { TEST_KEY };

export const STORE_KINDS = ['memory', 'sqlite', 'postgres'] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

export type TestServer = RunningServer & { url: string; base: string };

/** Fresh stores of one kind for one test file: call `setup` in beforeAll and `teardown` in afterAll. */
export class StoreKit {
  private dir: string | null = null;
  private db: TestDatabase | null = null;
  private n = 0;
  private readonly servers = new Set<TestServer>();

  constructor(readonly kind: StoreKind) {}

  async setup(): Promise<void> {
    // PostgreSQL servers get a data dir too: it holds their pid lock and node id, and the default (./aipd-data) is
    // shared by test files that run at the same time.
    if (this.kind !== 'memory') this.dir = mkdtempSync(join(tmpdir(), 'aipd-http-'));
    if (this.kind === 'postgres') this.db = await createTestDatabase();
  }

  /** The `store` and `dataDir` config of a fresh, empty store. */
  async freshStore(): Promise<ServerConfigInput> {
    const n = ++this.n;
    if (this.kind === 'memory') return { store: 'memory' };
    if (this.kind === 'sqlite') return { store: 'sqlite', dataDir: join(this.dir!, `s${n}`) };
    await this.db!.query(`CREATE SCHEMA t${n}`);
    return { store: this.db!.urlWithSchema(`t${n}`), nodeId: `node-${n}`, dataDir: join(this.dir!, `p${n}`) };
  }

  /** A server on a fresh store (closed by `closeAll` or `teardown` if the test does not). */
  async start(config: ServerConfigInput = {}): Promise<TestServer> {
    const s = await startTestServer({ ...(await this.freshStore()), ...config });
    const server = Object.assign(s, { base: `http://127.0.0.1:${s.port}` });
    this.servers.add(server);
    return server;
  }

  async closeAll(): Promise<void> {
    const all = [...this.servers];
    this.servers.clear();
    await Promise.all(all.map((s) => s.close()));
  }

  async teardown(): Promise<void> {
    await this.closeAll();
    await this.db?.drop();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The body as JSON, or undefined when it is not JSON (loosely typed: tests read into it). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly json: any;
}

export interface CallOptions {
  /** Sent as JSON unless a string. */
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  /** The API key header: X-API-Key by default; `bearer` sends `Authorization: Bearer`; null sends none. */
  readonly auth?: 'key' | 'bearer' | null;
  readonly key?: string;
}

/** One request to the server over real HTTP. */
export async function call(
  base: string,
  method: string,
  path: string,
  opts: CallOptions = {},
): Promise<Reply> {
  const headers: Record<string, string> = {};
  const key = opts.key ?? TEST_KEY;
  const auth = opts.auth === undefined ? 'key' : opts.auth;
  if (auth === 'key') headers['x-api-key'] = key;
  if (auth === 'bearer') headers.authorization = `Bearer ${key}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  Object.assign(headers, opts.headers);
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** A client bound to one server. */
export function client(server: { base: string }) {
  return {
    get: (path: string, opts?: CallOptions) => call(server.base, 'GET', path, opts),
    post: (path: string, body?: unknown, opts?: CallOptions) =>
      call(server.base, 'POST', path, { ...opts, body }),
    patch: (path: string, body?: unknown, opts?: CallOptions) =>
      call(server.base, 'PATCH', path, { ...opts, body }),
    put: (path: string, body?: unknown, opts?: CallOptions) =>
      call(server.base, 'PUT', path, { ...opts, body }),
    delete: (path: string, opts?: CallOptions) => call(server.base, 'DELETE', path, opts),
  };
}
export type Client = ReturnType<typeof client>;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `check` returns a value other than undefined (or throws after `ms`). */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  ms = 5_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}
