/**
 * The OPEN params of a `stream` channel with `framing: "stdio"`, checked and turned into what to spawn:
 *
 *   mode   "command" (default): command (string), args? (string[]), shell? (boolean: run the line by /bin/sh -c)
 *          "shell": the user's interactive shell ($SHELL, else /bin/sh; %COMSPEC% or cmd.exe on Windows)
 *   pty?   {rows, cols}: run in a PTY (node-pty), else pipes
 *   cwd?   working folder; with a device root it is resolved inside the root and may not leave it
 *   env?   {NAME: value} merged over the device's environment
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { aipError, type AipError } from '../../../protocol/index.js';
import { resolveInRoot } from './paths.js';

export interface StdioSpec {
  readonly mode: 'command' | 'shell';
  /** The program and its arguments, after `shell` and `mode` are applied. */
  readonly file: string;
  readonly args: readonly string[];
  /** The command as the user gave it (for errors and logs). */
  readonly display: string;
  readonly pty: { rows: number; cols: number } | null;
  readonly cwd: string | undefined;
  readonly env: Readonly<Record<string, string>>;
}

type Parsed<T> = { ok: true; value: T } | { ok: false; error: AipError };

const bad = (detail: string): { ok: false; error: AipError } => ({
  ok: false,
  error: aipError('CHANNEL_BAD_PARAMS', { detail }),
});

const isDim = (n: unknown): n is number =>
  Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;

/** The shell a `"shell"` session runs. */
export function userShell(env: NodeJS.ProcessEnv = process.env): string {
  if (process.platform === 'win32') return env.COMSPEC || 'cmd.exe';
  return env.SHELL || '/bin/sh';
}

/** `line` run by the platform's shell (what child_process does with `shell: true`). */
export function shellLine(line: string): { file: string; args: string[] } {
  return process.platform === 'win32'
    ? { file: process.env.COMSPEC || 'cmd.exe', args: ['/d', '/s', '/c', `"${line}"`] }
    : { file: '/bin/sh', args: ['-c', line] };
}

/** Checks the params (not yet cwd, which needs the file system: `resolveCwd`). */
export function parseStdioParams(p: Record<string, unknown>): Parsed<StdioSpec> {
  const mode = p.mode ?? 'command';
  if (mode !== 'command' && mode !== 'shell') return bad("mode must be 'command' or 'shell'");
  let pty: StdioSpec['pty'] = null;
  if (p.pty !== undefined && p.pty !== null) {
    const { rows, cols } = (typeof p.pty === 'object' ? p.pty : {}) as { rows?: unknown; cols?: unknown };
    if (!isDim(rows) || !isDim(cols)) return bad('pty must be {rows, cols} with integers 1–65535');
    pty = { rows, cols };
  }
  if (p.cwd !== undefined && (typeof p.cwd !== 'string' || p.cwd.length === 0 || p.cwd.includes('\0')))
    return bad('cwd must be a non-empty string');
  const env: Record<string, string> = {};
  if (p.env !== undefined) {
    if (p.env === null || typeof p.env !== 'object' || Array.isArray(p.env))
      return bad('env must be an object of strings');
    for (const [k, v] of Object.entries(p.env)) {
      if (typeof v !== 'string' || k.length === 0 || /[=\0]/.test(k) || v.includes('\0'))
        return bad(`env.${k} must be a string (names without '=')`);
      env[k] = v;
    }
  }
  const common = { pty, cwd: p.cwd, env };
  if (mode === 'shell') {
    const file = userShell({ ...process.env, ...env });
    return { ok: true, value: { mode, file, args: [], display: file, ...common } };
  }
  const command = p.command;
  const args = p.args ?? [];
  if (typeof command !== 'string' || command.length === 0 || command.includes('\0'))
    return bad('command mode needs command (a non-empty string)');
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string'))
    return bad('args must be an array of strings');
  if (p.shell !== undefined && typeof p.shell !== 'boolean') return bad('shell must be a boolean');
  const strArgs = args;
  if (p.shell === true) {
    const line = [command, ...strArgs].join(' ');
    return { ok: true, value: { mode, ...shellLine(line), display: line, ...common } };
  }
  return { ok: true, value: { mode, file: command, args: strArgs, display: command, ...common } };
}

/**
 * The working folder. With a root: none given → the root; relative → inside the root; absolute → must lie in
 * the root. It must exist and be a folder.
 */
export async function resolveCwd(
  root: string | undefined,
  cwd: string | undefined,
): Promise<Parsed<string | undefined>> {
  let target: string | undefined = cwd;
  if (root !== undefined) {
    let rel = cwd ?? '.';
    if (path.isAbsolute(rel)) {
      const under = path.relative(path.resolve(root), path.resolve(rel));
      if (under.startsWith('..') || path.isAbsolute(under))
        return { ok: false, error: aipError('FILE_PATH_ESCAPE', { path: rel }) };
      rel = under === '' ? '.' : under;
    }
    const r = await resolveInRoot(root, rel);
    if (!r.ok) return { ok: false, error: aipError('FILE_PATH_ESCAPE', { path: cwd ?? '.' }) };
    target = r.path;
  }
  if (target === undefined) return { ok: true, value: undefined };
  const st = await stat(target).catch(() => null);
  if (!st) return { ok: false, error: aipError('FILE_NOT_FOUND', { path: cwd ?? '.' }) };
  if (!st.isDirectory()) return { ok: false, error: aipError('FILE_NOT_A_DIRECTORY', { path: cwd ?? '.' }) };
  return { ok: true, value: target };
}
