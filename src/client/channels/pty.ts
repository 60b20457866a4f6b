/**
 * Optional PTY support through the `node-pty` package (an optionalDependency with a native addon). It is loaded
 * with a dynamic import the first time a PTY is asked for; when it cannot load, callers fall back to pipes and a
 * warning is logged once.
 */
import type { Logger } from 'pino';

/** The part of node-pty's IPty the device uses. */
export interface PtyProcess {
  readonly pid: number;
  /** The slave device (e.g. /dev/pts/3), on Unix. */
  readonly ptsName?: string;
  onData(listener: (data: Buffer | string) => void): unknown;
  onExit(listener: (e: { exitCode: number; signal?: number }) => void): unknown;
  write(data: string | Buffer): void;
  resize(cols: number, rows: number): void;
  kill(signal?: string): void;
  pause(): void;
  resume(): void;
}

export interface PtySpawnOptions {
  name?: string;
  cols: number;
  rows: number;
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** null: data arrives as Buffers. */
  encoding?: string | null;
}

/** The part of the `node-pty` module the device uses. */
export interface PtyModule {
  spawn(file: string, args: string[], options: PtySpawnOptions): PtyProcess;
}

/** Loads the module; resolves null when it cannot load. */
export type PtyLoader = () => Promise<PtyModule | null>;

let cached: Promise<{ mod: PtyModule | null; error: string | null }> | null = null;
let warned = false;

function load(): Promise<{ mod: PtyModule | null; error: string | null }> {
  const name = 'node-pty'; // not a literal import: the package is optional, and typechecking must not need it
  cached ??= (import(name) as Promise<Record<string, unknown>>).then(
    (m) => {
      const spawn = (m.spawn ?? (m.default as Record<string, unknown> | undefined)?.spawn) as
        PtyModule['spawn'] | undefined;
      return typeof spawn === 'function'
        ? { mod: { spawn }, error: null }
        : { mod: null, error: 'node-pty has no spawn()' };
    },
    (e: unknown) => ({ mod: null, error: e instanceof Error ? e.message : String(e) }),
  );
  return cached;
}

/** node-pty, or null (logging a warning the first time) when it cannot load. */
export async function loadNodePty(logger?: Logger): Promise<PtyModule | null> {
  const { mod, error } = await load();
  if (!mod && !warned) {
    warned = true;
    logger?.warn({ reason: error }, 'node-pty cannot load: PTY requests fall back to pipes');
  }
  return mod;
}

/** True when node-pty loads here (for the device's advertised metadata). */
export async function ptyAvailable(): Promise<boolean> {
  return (await load()).mod !== null;
}
