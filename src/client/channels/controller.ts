/**
 * Controller-side helpers: open a channel through the server and get a Node Duplex.
 * `runCommand` opens a `stream` channel and resolves the remote exit status from the device's FIN trailer.
 */
import type { ChannelKind } from '../../../protocol/channel.js';
import type { ChannelMux } from '../../channel/mux.js';
import { ChannelDuplex } from '../../channel/stream.js';

export async function openChannelStream(
  mux: ChannelMux,
  sessionId: string,
  kind: ChannelKind,
  params: Record<string, unknown> = {},
): Promise<ChannelDuplex> {
  return new ChannelDuplex(await mux.open({ session_id: sessionId, kind, params }));
}

export interface RemoteExit {
  readonly exitCode: number | null;
  readonly signal: string | null;
}

/** Starts `command` on the device; write stdin to `stream`, read stdout+stderr from it; `exit` settles at the end. */
export async function runCommand(
  mux: ChannelMux,
  sessionId: string,
  command: string,
  opts: { args?: string[]; shell?: boolean; cwd?: string } = {},
): Promise<{ stream: ChannelDuplex; exit: Promise<RemoteExit> }> {
  const stream = await openChannelStream(mux, sessionId, 'stream', { command, ...opts });
  const exit = new Promise<RemoteExit>((resolve, reject) => {
    stream.once('end', () => {
      const t = stream.remoteTrailer;
      resolve({
        exitCode: typeof t?.exit_code === 'number' ? t.exit_code : null,
        signal: typeof t?.signal === 'string' ? t.signal : null,
      });
    });
    stream.once('error', reject);
  });
  exit.catch(() => undefined); // the caller may never await `exit`
  return { stream, exit };
}
