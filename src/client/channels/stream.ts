/**
 * Device side of `stream` channels: a command's stdio (Standard_Stream / InteractiveCommands semantics).
 *
 * params {command, args?, shell?, cwd?}: stdin comes from the channel (the controller's FIN closes it), stdout and
 * stderr go to the channel, and when the process exits the device sends FIN with the trailer
 * `{exit_code, signal}` — unlike SSM, the exit status reaches the controller.
 */
import { spawn } from 'node:child_process';
import { aipError } from '../../../protocol/index.js';
import type { IncomingChannel } from '../../channel/mux.js';
import { ChannelDuplex } from '../../channel/stream.js';

export interface StreamPolicy {
  /** Allow `shell: true` (the command line is run by /bin/sh or cmd.exe). Default true. */
  readonly allowShell?: boolean;
  /** Extra check on the command; return false to refuse. */
  readonly allowCommand?: (command: string, args: readonly string[]) => boolean;
}

export function handleStreamChannel(incoming: IncomingChannel, policy: StreamPolicy = {}): void {
  const p = incoming.params;
  const command = p.command;
  const args = p.args ?? [];
  const shell = p.shell === true;
  if (
    typeof command !== 'string' ||
    command.length === 0 ||
    !Array.isArray(args) ||
    !args.every((a) => typeof a === 'string')
  )
    return incoming.reject(
      aipError('CHANNEL_BAD_PARAMS', { detail: 'stream needs command (string) and args (string[])' }),
    );
  if (shell && policy.allowShell === false)
    return incoming.reject(aipError('CHANNEL_BAD_PARAMS', { detail: 'shell commands are disabled' }));
  if (policy.allowCommand && !policy.allowCommand(command, args))
    return incoming.reject(aipError('STREAM_SPAWN_FAILED', { command, reason: 'not allowed' }));
  const child = spawn(command, args, {
    shell,
    cwd: typeof p.cwd === 'string' ? p.cwd : undefined,
    stdio: ['pipe', 'pipe', 'pipe'],
    windowsHide: true,
  });
  child.once('error', (err) => {
    if (!child.pid) incoming.reject(aipError('STREAM_SPAWN_FAILED', { command, reason: err.message }));
  });
  child.once('spawn', () => {
    const duplex = new ChannelDuplex(incoming.accept());
    child.stdout.pipe(duplex, { end: false });
    child.stderr.pipe(duplex, { end: false });
    // 'close' comes after the process exited and both outputs ended, so every output byte is already queued.
    child.once('close', (code, signal) => {
      duplex.setTrailer({ exit_code: code, signal });
      duplex.end();
    });
    duplex.pipe(child.stdin);
    child.stdin.on('error', () => undefined); // EPIPE when the process exits before reading all stdin
    duplex.on('error', () => undefined); // a RESET from the controller; 'close' below ends the process
    duplex.on('close', () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
  });
}
