/**
 * A process behind a stdio stream channel, in one of two forms with the same interface:
 * - pipes (child_process, `detached` so it leads its own group): stdout and stderr apart;
 * - a PTY (node-pty; the child is a session leader): all output as stdout, resizable.
 *
 * Output is delivered in order to the `start` listener; `pause`/`resume` stop and restart reading it, so a slow
 * channel holds the process back instead of growing a buffer. `exited` settles once the process is gone and all
 * its output was delivered.
 */
import { spawn as spawnChild, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { closeSync, constants as fsc, openSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { constants as osc } from 'node:os';
import path from 'node:path';
import { aipError, type AipError } from '../../../protocol/index.js';
import { StdioTag } from '../../../protocol/stdio.js';
import { foregroundGroup, killGroup, signalGroup } from '../process-group.js';
import type { PtyModule, PtyProcess } from './pty.js';
import type { StdioSpec } from './stdio-params.js';

export interface ExitStatus {
  /** null when a signal ended the process. */
  readonly exit_code: number | null;
  readonly signal: string | null;
}

export type OutputTag = typeof StdioTag.STDOUT | typeof StdioTag.STDERR;

export interface StdioProcess {
  readonly pid: number;
  readonly pty: boolean;
  /** Settles when the process exited and all its output went to the listener. */
  readonly exited: Promise<ExitStatus>;
  /** True once `exited` settled. */
  readonly done: boolean;
  /** Starts delivering output. */
  start(onOutput: (tag: OutputTag, bytes: Uint8Array) => void): void;
  pause(): void;
  resume(): void;
  /** Writes to stdin (or the PTY); resolves when more may be written. */
  write(bytes: Uint8Array): Promise<void>;
  /** Closes stdin; on a PTY writes ^D. */
  endInput(): void;
  resize(rows: number, cols: number): void;
  /** Sends a signal to the process group (on a PTY, the terminal's foreground group). */
  signal(name: NodeJS.Signals): void;
  /** SIGKILLs the group (and its session), unless the process is already done. */
  kill(): void;
}

const SIGNAL_NAMES = new Map(Object.entries(osc.signals).map(([name, n]) => [n, name]));

const spawnFailed = (command: string, reason: string): AipError =>
  aipError('STREAM_SPAWN_FAILED', { command, reason });

interface SpawnArgs {
  readonly spec: StdioSpec;
  readonly cwd: string | undefined;
}

/** Starts the process with pipes; rejects with STREAM_SPAWN_FAILED. */
export function spawnPipes({ spec, cwd }: SpawnArgs): Promise<StdioProcess> {
  const child = spawnChild(spec.file, [...spec.args], {
    cwd,
    env: { ...process.env, ...spec.env },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    windowsHide: true,
  });
  return new Promise((resolve, reject) => {
    child.on('error', (err) => {
      if (!child.pid) reject(spawnFailed(spec.display, err.message));
    });
    child.once('spawn', () => resolve(new PipeProcess(child)));
  });
}

class PipeProcess implements StdioProcess {
  readonly pid: number;
  readonly pty = false;
  readonly exited: Promise<ExitStatus>;
  done = false;

  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.pid = child.pid!;
    child.stdin.on('error', () => undefined); // EPIPE when the process exits before reading all stdin
    // 'close' comes after the process exited and both outputs ended.
    this.exited = new Promise((resolve) =>
      child.once('close', (code, signal) => {
        this.done = true;
        resolve({ exit_code: signal ? null : code, signal });
      }),
    );
  }

  start(onOutput: (tag: OutputTag, bytes: Uint8Array) => void): void {
    this.child.stdout.on('data', (b: Buffer) => onOutput(StdioTag.STDOUT, b));
    this.child.stderr.on('data', (b: Buffer) => onOutput(StdioTag.STDERR, b));
  }
  pause(): void {
    this.child.stdout.pause();
    this.child.stderr.pause();
  }
  resume(): void {
    this.child.stdout.resume();
    this.child.stderr.resume();
  }
  write(bytes: Uint8Array): Promise<void> {
    const stdin = this.child.stdin;
    if (stdin.destroyed || stdin.writableEnded) return Promise.resolve();
    if (stdin.write(bytes)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        stdin.off('drain', done);
        stdin.off('close', done);
        resolve();
      };
      stdin.on('drain', done);
      stdin.on('close', done);
    });
  }
  endInput(): void {
    if (!this.child.stdin.writableEnded) this.child.stdin.end();
  }
  resize(): void {} // pipes have no size
  signal(name: NodeJS.Signals): void {
    if (!this.done) signalGroup(this.pid, name);
  }
  kill(): void {
    if (this.done) return;
    killGroup(this.pid);
    // Paused outputs would never end, and 'close' never come.
    this.child.stdout.destroy();
    this.child.stderr.destroy();
    this.child.stdin.destroy();
  }
}

/** `file` as execvp would find it (node-pty's fork reports a missing program only as an exit). */
async function findExecutable(
  file: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<boolean> {
  const ok = (p: string): Promise<boolean> =>
    access(p, fsc.X_OK).then(
      () => true,
      () => false,
    );
  if (file.includes('/')) return ok(file);
  for (const dir of (env.PATH ?? '/usr/bin:/bin').split(path.delimiter))
    if (dir && (await ok(path.join(dir, file)))) return true;
  return false;
}

/** Starts the process in a PTY; rejects with STREAM_SPAWN_FAILED. */
export async function spawnPty(mod: PtyModule, { spec, cwd }: SpawnArgs): Promise<StdioProcess> {
  const env: Record<string, string | undefined> = { ...process.env, ...spec.env };
  env.TERM ??= 'xterm-256color';
  if (process.platform !== 'win32' && !(await findExecutable(spec.file, env)))
    throw spawnFailed(spec.display, `'${spec.file}' not found or not executable`);
  const size = spec.pty ?? { rows: 24, cols: 80 };
  try {
    const p = mod.spawn(spec.file, [...spec.args], {
      name: env.TERM,
      rows: size.rows,
      cols: size.cols,
      cwd: cwd ?? process.cwd(),
      env,
      encoding: null,
    });
    return new PtyStdio(p);
  } catch (e) {
    throw spawnFailed(spec.display, e instanceof Error ? e.message : String(e));
  }
}

class PtyStdio implements StdioProcess {
  readonly pid: number;
  readonly pty = true;
  readonly exited: Promise<ExitStatus>;
  done = false;
  private listener: ((tag: OutputTag, bytes: Uint8Array) => void) | null = null;
  private early: Uint8Array[] = [];
  private watch: NodeJS.Timeout | null = null;
  private leaderGone = false;

  /**
   * Our own descriptor of the PTY's slave side. node-pty stops reading when the master reads EIO (all slave
   * descriptors closed, i.e. the process exited) and drops what its socket had buffered; holding the slave open
   * keeps the master readable until node-pty closes it, 200 ms after the exit, by which time the rest was read.
   */
  private slaveFd: number | null = null;

  constructor(private readonly p: PtyProcess) {
    this.pid = p.pid;
    if (p.ptsName)
      try {
        this.slaveFd = openSync(p.ptsName, fsc.O_RDONLY | fsc.O_NOCTTY);
      } catch {
        // best effort
      }
    p.onData((d) => {
      const b = typeof d === 'string' ? Buffer.from(d, 'utf8') : d;
      if (this.listener) this.listener(StdioTag.STDOUT, b);
      else this.early.push(b);
    });
    // node-pty emits exit after the PTY's output has been read to its end.
    this.exited = new Promise((resolve) =>
      p.onExit(({ exitCode, signal }) => {
        this.done = true;
        if (this.slaveFd !== null) closeSync(this.slaveFd);
        this.slaveFd = null;
        if (this.watch) clearInterval(this.watch);
        this.watch = null;
        resolve(
          signal
            ? { exit_code: null, signal: SIGNAL_NAMES.get(signal) ?? String(signal) }
            : { exit_code: exitCode, signal: null },
        );
      }),
    );
  }

  start(onOutput: (tag: OutputTag, bytes: Uint8Array) => void): void {
    this.listener = onOutput;
    for (const b of this.early.splice(0)) onOutput(StdioTag.STDOUT, b);
  }
  /**
   * node-pty destroys the PTY's socket 200 ms after the process exits, read or not, so output still in the kernel
   * would be lost while paused. While paused, then, it checks every 50 ms that the process is still there, and
   * once it is gone reads the rest (at most what the kernel's PTY buffer holds) and pauses no more.
   */
  pause(): void {
    if (this.leaderGone || this.watch) return;
    this.p.pause();
    this.watch = setInterval(() => {
      try {
        process.kill(this.pid, 0);
        return;
      } catch {
        // gone (node-pty reaps it): drain
      }
      this.leaderGone = true;
      this.resume();
    }, 50);
    this.watch.unref();
  }
  resume(): void {
    if (this.watch) clearInterval(this.watch);
    this.watch = null;
    this.p.resume();
  }
  write(bytes: Uint8Array): Promise<void> {
    if (!this.done) this.p.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return Promise.resolve();
  }
  endInput(): void {
    if (!this.done) this.p.write('\x04');
  }
  resize(rows: number, cols: number): void {
    if (!this.done) this.p.resize(cols, rows);
  }
  signal(name: NodeJS.Signals): void {
    if (!this.done) signalGroup(foregroundGroup(this.pid), name);
  }
  kill(): void {
    if (!this.done) killGroup(this.pid);
  }
}
