/**
 * `execute_command` for the device agent: one shell line, run by /bin/sh -c (cmd.exe on Windows) as the leader of
 * its own process group, with a timeout that kills the whole group and an output cap per stream.
 */
import { spawn } from 'node:child_process';
import { killGroup, type ProcessGroups } from '../process-group.js';
import { shellLine } from '../channels/stdio-params.js';

export const EXEC_DEFAULT_TIMEOUT_MS = 60_000;
export const EXEC_MAX_TIMEOUT_MS = 24 * 3600_000;
/** Bytes kept of stdout and of stderr each; the rest is read and dropped. */
export const EXEC_OUTPUT_CAP = 8 * 1024 * 1024;

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  /** null when a signal (or the timeout) ended it. */
  readonly exit_code: number | null;
  readonly signal: string | null;
  readonly timed_out: boolean;
  /** True when stdout or stderr went over EXEC_OUTPUT_CAP and was cut there. */
  readonly truncated: boolean;
}

export interface ExecOptions {
  readonly timeoutMs?: number;
  readonly cwd?: string;
  readonly groups?: ProcessGroups;
  readonly outputCap?: number;
}

class Capped {
  private readonly parts: Buffer[] = [];
  private bytes = 0;
  truncated = false;
  constructor(private readonly cap: number) {}
  push(b: Buffer): void {
    const room = this.cap - this.bytes;
    if (b.byteLength > room) {
      this.truncated = true;
      if (room > 0) this.parts.push(b.subarray(0, room));
      this.bytes = this.cap;
      return;
    }
    this.parts.push(b);
    this.bytes += b.byteLength;
  }
  text(): string {
    return Buffer.concat(this.parts).toString('utf8');
  }
}

/** Runs `command`; rejects only when it cannot be started. */
export function executeCommand(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = Math.min(Math.max(1, opts.timeoutMs ?? EXEC_DEFAULT_TIMEOUT_MS), EXEC_MAX_TIMEOUT_MS);
  const { file, args } = shellLine(command);
  const child = spawn(file, args, {
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    windowsHide: true,
  });
  const out = new Capped(opts.outputCap ?? EXEC_OUTPUT_CAP);
  const err = new Capped(opts.outputCap ?? EXEC_OUTPUT_CAP);
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  return new Promise((resolve, reject) => {
    let timedOut = false;
    let timer: NodeJS.Timeout | null = null;
    child.on('error', (e) => {
      if (!child.pid) reject(e);
    });
    child.once('spawn', () => {
      opts.groups?.add(child.pid!);
      timer = setTimeout(() => {
        timedOut = true;
        killGroup(child.pid!);
        child.stdout.destroy(); // a process that left the group may still hold the pipes
        child.stderr.destroy();
      }, timeoutMs);
    });
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (child.pid) opts.groups?.release(child.pid);
      resolve({
        stdout: out.text(),
        stderr: err.text(),
        exit_code: signal ? null : code,
        signal,
        timed_out: timedOut,
        truncated: out.truncated || err.truncated,
      });
    });
  });
}
