/**
 * Device side of `stream` channels opened with `params.framing = "stdio"` (protocol/stdio.ts): remote
 * execution and shells. Params are in stdio-params.ts.
 *
 * - Device → server: STDOUT and STDERR records (a PTY sends everything as STDOUT). Output goes through the
 *   channel's credit window; while a write waits for credit the process's output is paused.
 * - Server → device: STDIN, RESIZE (PTY only), EOF (closes stdin; ^D on a PTY), SIGNAL (a name from
 *   STDIO_SIGNALS, sent to the process group). The server's FIN counts as EOF. A bad record resets the channel
 *   with STDIO_BAD_RECORD and kills the process.
 * - The process's end is the FIN, after all its output, with the trailer `{exit_code, signal, pty}`.
 * - A RESET (the server interrupts, or the connection drops) SIGKILLs the whole process group.
 */
import type { Logger } from 'pino';
import { AipError, aipError } from '../../../protocol/index.js';
import {
  STDIO_SIGNALS,
  StdioDecoder,
  StdioTag,
  decodeResize,
  encodeStdioChunks,
} from '../../../protocol/stdio.js';
import type { ChannelEndpoint } from '../../channel/endpoint.js';
import type { IncomingChannel } from '../../channel/mux.js';
import type { ProcessGroups } from '../process-group.js';
import { loadNodePty, type PtyLoader } from './pty.js';
import { parseStdioParams, resolveCwd } from './stdio-params.js';
import { spawnPipes, spawnPty, type StdioProcess } from './stdio-process.js';

export interface StdioPolicy {
  /** Confines `cwd` (and is the default working folder) when set. */
  readonly root?: string;
  /** Allow `shell: true` and `mode: "shell"`. Default true. */
  readonly allowShell?: boolean;
  /** Extra check on the program; return false to refuse. */
  readonly allowCommand?: (command: string, args: readonly string[]) => boolean;
  /** Tracks the process groups started, so a stopping device can kill them. */
  readonly groups?: ProcessGroups;
  /** How node-pty is loaded (tests inject a failing one); default `loadNodePty`. */
  readonly loadPty?: PtyLoader;
  readonly logger?: Logger;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export async function handleStdioChannel(incoming: IncomingChannel, policy: StdioPolicy = {}): Promise<void> {
  const parsed = parseStdioParams(incoming.params);
  if (!parsed.ok) return incoming.reject(parsed.error);
  const spec = parsed.value;
  if ((spec.mode === 'shell' || incoming.params.shell === true) && policy.allowShell === false)
    return incoming.reject(aipError('CHANNEL_BAD_PARAMS', { detail: 'shell commands are disabled' }));
  if (policy.allowCommand && !policy.allowCommand(spec.file, spec.args))
    return incoming.reject(aipError('STREAM_SPAWN_FAILED', { command: spec.display, reason: 'not allowed' }));
  const cwd = await resolveCwd(policy.root, spec.cwd);
  if (!cwd.ok) return incoming.reject(cwd.error);
  const mod = spec.pty ? await (policy.loadPty ?? (() => loadNodePty(policy.logger)))() : null;
  let proc: StdioProcess;
  try {
    proc = mod ? await spawnPty(mod, { spec, cwd: cwd.value }) : await spawnPipes({ spec, cwd: cwd.value });
  } catch (e) {
    return incoming.reject(
      e instanceof AipError
        ? e
        : aipError('STREAM_SPAWN_FAILED', { command: spec.display, reason: (e as Error).message }),
    );
  }
  policy.groups?.add(proc.pid);
  policy.logger?.info(
    { channel: incoming.channel, session: incoming.sessionId, pid: proc.pid, pty: proc.pty, mode: spec.mode },
    'stdio process started',
  );
  run(incoming.accept(), proc, policy);
}

function run(ep: ChannelEndpoint, proc: StdioProcess, policy: StdioPolicy): void {
  const onReset = (): void => {
    if (ep.state === 'reset') proc.kill();
  };
  ep.onStateChange(onReset);
  onReset(); // the connection may have dropped while the process started

  let paused = false;
  const settled = (): void => {
    if (paused && ep.stats().pendingWrites === 0) {
      paused = false;
      proc.resume();
    }
  };
  proc.start((tag, bytes) => {
    if (ep.finished) return;
    for (const rec of encodeStdioChunks(tag, bytes)) ep.write(rec).then(settled, () => undefined);
    if (!paused && ep.stats().pendingWrites > 0) {
      paused = true;
      proc.pause();
    }
  });

  void proc.exited.then((status) => {
    policy.groups?.release(proc.pid);
    policy.logger?.info({ channel: ep.channel, pid: proc.pid, ...status }, 'stdio process ended');
    if (!ep.finished) ep.end({ ...status, pty: proc.pty }).catch(() => undefined);
  });

  void pumpInput(ep, proc).catch((e: unknown) => {
    if (ep.finished) return;
    ep.reset(e as AipError);
    proc.kill();
  });
}

/** Reads the server's records and applies them to the process, one at a time. */
async function pumpInput(ep: ChannelEndpoint, proc: StdioProcess): Promise<void> {
  const decoder = new StdioDecoder();
  let eof = false;
  const badRecord = (detail: string): AipError => aipError('STDIO_BAD_RECORD', { detail });
  for (;;) {
    let chunk: Uint8Array | null;
    try {
      chunk = await ep.read();
    } catch {
      return; // reset: the state listener kills the process
    }
    if (chunk === null) {
      if (!eof) proc.endInput();
      return;
    }
    const records = decoder.push(chunk);
    if (!Array.isArray(records)) throw records;
    for (const r of records) {
      switch (r.tag) {
        case StdioTag.STDIN:
          if (!eof || proc.pty) await proc.write(r.payload);
          break;
        case StdioTag.RESIZE: {
          const size = decodeResize(r.payload);
          if (!size) throw badRecord('RESIZE must be {"rows", "cols"} with integers 1–65535');
          proc.resize(size.rows, size.cols);
          break;
        }
        case StdioTag.EOF:
          if (!eof || proc.pty) proc.endInput();
          eof = true;
          break;
        case StdioTag.SIGNAL: {
          let name: string;
          try {
            name = utf8.decode(r.payload);
          } catch {
            throw badRecord('SIGNAL name is not UTF-8');
          }
          if (!(STDIO_SIGNALS as readonly string[]).includes(name))
            throw badRecord(`SIGNAL '${name.slice(0, 32)}' is not one of ${STDIO_SIGNALS.join(', ')}`);
          proc.signal(name as NodeJS.Signals);
          break;
        }
        default:
          throw badRecord(`a device does not take tag ${r.tag} records`);
      }
    }
  }
}
