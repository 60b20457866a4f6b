/** Runs the `aipd` CLI as a real child process (through tsx), and reads its output. Kill what you spawn. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';

export const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');

/** Runs `aipd ARGS`. The session store is `memory` unless `env` names another (AIPD_STORE, AIPD_DATA_DIR). */
export function aipdProcess(
  args: string[],
  env: Record<string, string> = {},
): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    env: { ...process.env, AIPD_STORE: 'memory', ...env },
  });
}

export interface Collected {
  readonly out: () => string;
  readonly err: () => string;
  readonly exit: Promise<number | null>;
}

export function collect(p: ChildProcessWithoutNullStreams): Collected {
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { out: () => out, err: () => err, exit: new Promise((r) => p.on('exit', (code) => r(code))) };
}

export async function waitForLine(get: () => string, re: RegExp, ms = 15_000): Promise<RegExpMatchArray> {
  const end = Date.now() + ms;
  for (;;) {
    const m = get().match(re);
    if (m) return m;
    if (Date.now() > end) throw new Error(`no line matching ${re} in: ${get()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface ServedProcess {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly io: Collected;
  /** The port it printed in its listening line. */
  readonly port: number;
  readonly exit: Promise<number | null>;
}

/**
 * `aipd serve --port PORT --api-key KEY ...extra` as a child process; resolves once it prints its listening line,
 * rejects if it exits first. The caller kills it (push `proc` to its cleanup list via `track`).
 */
export async function serveProcess(
  port: number,
  key: string,
  opts: { extra?: string[]; env?: Record<string, string>; track?: ChildProcessWithoutNullStreams[] } = {},
): Promise<ServedProcess> {
  const proc = aipdProcess(
    ['serve', '--port', String(port), '--api-key', key, '--log-level', 'warn', ...(opts.extra ?? [])],
    opts.env,
  );
  opts.track?.push(proc);
  const io = collect(proc);
  const m = await Promise.race([
    waitForLine(io.out, /listening on ws:\/\/[^:]+:(\d+)\/ws/),
    io.exit.then((code): never => {
      throw new Error(`aipd exited ${code} before listening: ${io.err()}`);
    }),
  ]);
  return { proc, io, port: Number(m[1]), exit: io.exit };
}
