/**
 * Spawns and drives AWS's real `session-manager-plugin` (the binary named by env SSM_PLUGIN_BIN) against an aipd
 * server, for test/ssm/real-plugin.test.ts. The plugin is started the way the AWS CLI's legacy form does:
 *
 *   session-manager-plugin '{"SessionId":…,"StreamUrl":…,"TokenValue":…}' <region> StartSession
 *
 * stdin stays an open pipe (EOF ends a shell session at once), stdout is a pipe (so a shell reports 300×100).
 * Every process started here is recorded in `PLUGINS`; call `stopPlugins()` in teardown.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import net from 'node:net';

/** The plugin binary to test, or undefined (the tests are skipped). */
export const PLUGIN_BIN: string | undefined = process.env.SSM_PLUGIN_BIN || undefined;

export interface StartSessionResponse {
  readonly SessionId: string;
  readonly StreamUrl: string;
  readonly TokenValue: string;
}

export interface PluginExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class PluginProcess {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly exited: Promise<PluginExit>;
  private readonly tmp: string;
  private stdout = '';
  private stderr = '';
  private exitInfo: PluginExit | null = null;

  /**
   * `ssmEndpoint` gives the 7-argument form (profile '', request `{"Target": …}`, endpoint): the plugin then calls
   * ResumeSession/TerminateSession on that URL instead of AWS.
   */
  constructor(bin: string, session: StartSessionResponse, ssmEndpoint?: string) {
    const response = {
      SessionId: session.SessionId,
      StreamUrl: session.StreamUrl,
      TokenValue: session.TokenValue,
    };
    const args = [JSON.stringify(response), 'local', 'StartSession'];
    if (ssmEndpoint) args.push('', JSON.stringify({ Target: 'aipd-device' }), ssmEndpoint);
    // Its own TMPDIR: in mux mode the plugin leaves a unix socket file there, removed with the folder on exit.
    this.tmp = mkdtempSync(join(tmpdir(), 'aipd-ssm-plugin-'));
    this.proc = spawn(bin, args, {
      env: {
        ...process.env,
        TMPDIR: this.tmp,
        // The SDK may want credentials even though no AWS API is called on the happy path; no shared files.
        AWS_ACCESS_KEY_ID: 'x',
        AWS_SECRET_ACCESS_KEY: 'x',
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.proc.stdout.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    // A write after the plugin exited must not crash the test process.
    this.proc.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        rmSync(this.tmp, { recursive: true, force: true });
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      this.proc.once('error', (err) => {
        this.stderr += `spawn error: ${err.message}`;
        this.exitInfo = { code: null, signal: null };
        resolve(this.exitInfo);
      });
    });
  }

  out(): string {
    return this.stdout;
  }

  err(): string {
    return this.stderr;
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  /** What the plugin printed, for failure messages. */
  describe(): string {
    const state = this.exitInfo ? `exited ${JSON.stringify(this.exitInfo)}` : 'still running';
    return `plugin ${state}; stdout=${JSON.stringify(this.stdout)} stderr=${JSON.stringify(this.stderr)}`;
  }

  write(s: string): void {
    this.proc.stdin.write(s);
  }

  /** Waits (at most `ms`) until stdout matches `re`; fails early if the plugin exits without printing it. */
  async waitFor(re: RegExp, what: string, ms = 20_000): Promise<RegExpMatchArray> {
    const end = Date.now() + ms;
    for (;;) {
      const m = this.stdout.match(re);
      if (m) return m;
      if (!this.running) throw new Error(`plugin exited before ${what}: ${this.describe()}`);
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${this.describe()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Waits (at most `ms`) for the plugin to exit on its own. */
  async waitExit(what: string, ms = 20_000): Promise<PluginExit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}: ${this.describe()}`)), ms);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.proc.kill(sig);
  }

  /** Ends the process: SIGTERM, then SIGKILL after 2 s. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 2_000);
    await this.exited;
    clearTimeout(t);
  }
}

/** Every plugin process started by `startPlugin`, so teardown can end them. */
const PLUGINS: PluginProcess[] = [];

export function startPlugin(bin: string, session: StartSessionResponse, ssmEndpoint?: string): PluginProcess {
  const p = new PluginProcess(bin, session, ssmEndpoint);
  PLUGINS.push(p);
  return p;
}

export async function stopPlugins(): Promise<void> {
  await Promise.all(PLUGINS.splice(0).map((p) => p.stop()));
}

/** One HTTP GET on a fresh TCP connection (no keep-alive); fails if the whole answer takes over `ms`. */
export function httpGet(port: number, path: string, ms = 20_000): Promise<{ status: number; body: Buffer }> {
  return httpExchange(port, 'GET', path, null, ms);
}

/** One HTTP POST of `body` on a fresh TCP connection; fails if the whole exchange takes over `ms`. */
export function httpPost(
  port: number,
  path: string,
  body: Buffer,
  ms = 20_000,
): Promise<{ status: number; body: Buffer }> {
  return httpExchange(port, 'POST', path, body, ms);
}

function httpExchange(
  port: number,
  method: 'GET' | 'POST',
  path: string,
  body: Buffer | null,
  ms: number,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { connection: 'close' };
    if (body) headers['content-length'] = body.length;
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
      });
      res.on('error', reject);
    });
    const timer = setTimeout(
      () =>
        req.destroy(new Error(`${method} http://127.0.0.1:${port}${path}: no complete answer in ${ms} ms`)),
      ms,
    );
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(body ?? undefined);
  });
}

/** A TCP proxy to `target` on loopback whose connections the test can cut (the plugin then has to resume). */
export class TcpProxy {
  private readonly server: net.Server;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  connections = 0;

  private constructor(target: number) {
    this.server = net.createServer((client) => {
      this.connections++;
      const upstream = net.connect(target, '127.0.0.1');
      const pair: [net.Socket, net.Socket] = [client, upstream];
      this.pairs.add(pair);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  static async start(target: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    await new Promise<void>((r) => proxy.server.listen(0, '127.0.0.1', r));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Cuts every open connection (both sides see a reset or EOF). */
  cut(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((r) => this.server.close(r));
  }
}
