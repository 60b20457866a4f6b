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
import http from 'node:http';

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
  private stdout = '';
  private stderr = '';
  private exitInfo: PluginExit | null = null;

  constructor(bin: string, session: StartSessionResponse) {
    const response = {
      SessionId: session.SessionId,
      StreamUrl: session.StreamUrl,
      TokenValue: session.TokenValue,
    };
    this.proc = spawn(bin, [JSON.stringify(response), 'local', 'StartSession'], {
      env: {
        ...process.env,
        // The SDK may want credentials even though no AWS API is called on the happy path.
        AWS_ACCESS_KEY_ID: 'x',
        AWS_SECRET_ACCESS_KEY: 'x',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.proc.stdout.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    // A write after the plugin exited must not crash the test process.
    this.proc.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
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

export function startPlugin(bin: string, session: StartSessionResponse): PluginProcess {
  const p = new PluginProcess(bin, session);
  PLUGINS.push(p);
  return p;
}

export async function stopPlugins(): Promise<void> {
  await Promise.all(PLUGINS.splice(0).map((p) => p.stop()));
}

/** One HTTP GET on a fresh TCP connection (no keep-alive); fails if the whole answer takes over `ms`. */
export function httpGet(port: number, path: string, ms = 20_000): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
        });
        res.on('error', reject);
      },
    );
    const timer = setTimeout(
      () => req.destroy(new Error(`GET http://127.0.0.1:${port}${path}: no complete answer in ${ms} ms`)),
      ms,
    );
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
