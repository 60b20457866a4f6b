/** The aipd child of `npm run soak` (bench/soak-server.ts): spawn, its port, its memory samples, its exit. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { track } from './proc.js';
import type { MemSample } from './soak-report.js';

/** How SoakServer.start runs bench/soak-server.ts. */
export interface SoakServerOptions {
  /** The server entry: soak-server.js under dist/, soak-server.ts when run with tsx. */
  entry: string;
  /** Run the entry through tsx (`--import tsx`). */
  fromSource: boolean;
  apiKey: string;
  /** Memory sample interval. */
  sampleS: number;
  /** Every Nth sample is taken after a full gc() (0 = never). */
  gcEvery: number;
  /** The server exits on its own after this many seconds. */
  deadlineS: number;
  /** Extra configuration keys for the server (its --config-json). */
  config: Record<string, unknown>;
}

/** A sample as the soak server prints it: MemSample's figures, before the soak process times and phases it. */
type RawSample = Omit<MemSample, 't_s' | 'phase'> & { t: string };

/** The aipd child: spawn, its port, its samples, its exit. */
export class SoakServer {
  readonly samples: MemSample[] = [];
  phase: MemSample['phase'] = 'idle';
  /** Date.now() at the start of the soak phase (sample times are relative to it). */
  t0 = Date.now();
  exited: { code: number | null; signal: string | null } | null = null;
  readonly stderr: string[] = [];
  gcAvailable = false;
  /** The extra configuration keys as the server understood them (null: unknown to this server version). */
  config: Record<string, unknown> = {};
  private sampleWaiters: (() => void)[] = [];

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }

  static start(o: SoakServerOptions): Promise<SoakServer> {
    const args = [
      ...(o.fromSource ? ['--import', 'tsx'] : []),
      '--expose-gc',
      o.entry,
      '--api-key',
      o.apiKey,
      '--sample-ms',
      String(o.sampleS * 1000),
      '--gc-every',
      String(o.gcEvery),
      '--deadline-s',
      String(o.deadlineS),
      '--config-json',
      JSON.stringify(o.config),
    ];
    const child = track(spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
    return new Promise((resolve, reject) => {
      let server: SoakServer | null = null;
      const stderr: string[] = [];
      createInterface({ input: child.stderr! }).on('line', (l) => {
        stderr.push(l);
        if (stderr.length > 30) stderr.shift();
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`soak server printed no port within 20 s; stderr: ${stderr.join(' | ')}`));
      }, 20_000);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        let m: Record<string, unknown>;
        try {
          m = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return;
        }
        if (m.t === 'listening' && !server) {
          clearTimeout(timer);
          server = new SoakServer(child, Number(m.port));
          server.gcAvailable = m.gc === true;
          server.config = (m.config as Record<string, unknown> | undefined) ?? {};
          server.stderr.push(...stderr);
          stderr.length = 0;
          resolve(server);
        } else if (m.t === 'sample' && server) server.onSample(m as unknown as RawSample);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (server) {
          server.stderr.push(...stderr);
          server.exited = { code, signal };
          for (const w of server.sampleWaiters.splice(0)) w();
        } else
          reject(
            new Error(
              `soak server exited early (code ${code}, signal ${signal}); stderr: ${stderr.join(' | ')}`,
            ),
          );
      });
    });
  }

  /** Resolves at the next sample (or when the server exits), at most after `timeoutMs`. */
  nextSample(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.sampleWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  get last(): MemSample | undefined {
    return this.samples[this.samples.length - 1];
  }

  async stop(): Promise<{ code: number | null; signal: string | null }> {
    if (this.exited) return this.exited;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.kill('SIGTERM');
    const k = setTimeout(() => this.child.kill('SIGKILL'), 8000);
    await exited;
    clearTimeout(k);
    return this.exited ?? { code: null, signal: null };
  }

  private onSample(m: RawSample): void {
    this.samples.push({
      t_s: Math.round((Date.now() - this.t0) / 100) / 10,
      phase: this.phase,
      n: m.n,
      gc: m.gc,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      clients: m.clients,
      channels: m.channels,
    });
    for (const w of this.sampleWaiters.splice(0)) w();
  }
}
