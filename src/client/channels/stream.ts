/**
 * Device side of `stream` channels: a command's stdio (Standard_Stream / InteractiveCommands semantics).
 *
 * With `params.framing = "stdio"` the channel carries stdio records (stdio.ts: separate stdout/stderr, PTYs,
 * resize, signals). Without it, the raw mode of older callers: params {command, args?, shell?, cwd?}; stdin comes
 * from the channel (the controller's FIN closes it), stdout and stderr go to the channel unframed, and when the
 * process exits the device sends FIN with the trailer `{exit_code, signal}`.
 *
 * Either way the process leads its own process group, and a RESET kills the whole group.
 */
import { spawn } from 'node:child_process';
import { aipError } from '../../../protocol/index.js';
import type { IncomingChannel } from '../../channel/mux.js';
import { ChannelDuplex } from '../../channel/stream.js';
import { killGroup } from '../process-group.js';
import { handleStdioChannel, type StdioPolicy } from './stdio.js';
import { resolveCwd } from './stdio-params.js';

export type StreamPolicy = StdioPolicy;

export function handleStreamChannel(incoming: IncomingChannel, policy: StreamPolicy = {}): void {
  if (incoming.params.framing === 'stdio') {
    handleStdioChannel(incoming, policy).catch((e: unknown) => {
      policy.logger?.warn({ err: e }, 'stdio channel failed');
      incoming.reject(aipError('STREAM_SPAWN_FAILED', { command: '?', reason: String(e) }));
    });
    return;
  }
  if (incoming.params.framing !== undefined)
    return incoming.reject(aipError('CHANNEL_BAD_PARAMS', { detail: "framing must be 'stdio' or absent" }));
  const p = incoming.params;
  const command = p.command;
  const args = p.args ?? [];
  const shell = p.shell === true;
  if (
    typeof command !== 'string' ||
    command.length === 0 ||
    !Array.isArray(args) ||
    !args.every((a) => typeof a === 'string') ||
    (p.cwd !== undefined && typeof p.cwd !== 'string')
  )
    return incoming.reject(
      aipError('CHANNEL_BAD_PARAMS', { detail: 'stream needs command (string) and args (string[])' }),
    );
  if (shell && policy.allowShell === false)
    return incoming.reject(aipError('CHANNEL_BAD_PARAMS', { detail: 'shell commands are disabled' }));
  if (policy.allowCommand && !policy.allowCommand(command, args))
    return incoming.reject(aipError('STREAM_SPAWN_FAILED', { command, reason: 'not allowed' }));
  void resolveCwd(policy.root, p.cwd).then((cwd) => {
    if (!cwd.ok) return incoming.reject(cwd.error);
    spawnRaw(incoming, policy, command, args, shell, cwd.value);
  });
}

function spawnRaw(
  incoming: IncomingChannel,
  policy: StreamPolicy,
  command: string,
  args: string[],
  shell: boolean,
  cwd: string | undefined,
): void {
  const child = spawn(command, args, {
    shell,
    cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    windowsHide: true,
  });
  child.on('error', (err) => {
    if (!child.pid) incoming.reject(aipError('STREAM_SPAWN_FAILED', { command, reason: err.message }));
  });
  child.once('spawn', () => {
    const pid = child.pid!;
    policy.groups?.add(pid);
    let done = false;
    const duplex = new ChannelDuplex(incoming.accept());
    child.stdout.pipe(duplex, { end: false });
    child.stderr.pipe(duplex, { end: false });
    // 'close' comes after the process exited and both outputs ended, so every output byte is already queued.
    child.once('close', (code, signal) => {
      done = true;
      policy.groups?.release(pid);
      duplex.setTrailer({ exit_code: code, signal });
      duplex.end();
    });
    duplex.pipe(child.stdin);
    child.stdin.on('error', () => undefined); // EPIPE when the process exits before reading all stdin
    duplex.on('error', () => undefined); // a RESET from the controller; 'close' below ends the process
    duplex.on('close', () => {
      if (done) return;
      killGroup(pid);
      child.stdout.destroy();
      child.stderr.destroy();
    });
  });
}
