/**
 * The device's OPEN handler: dispatches incoming channels by kind to the file, stream and port handlers.
 * Pass it as `onOpen` of the device's ChannelMux. A kind that is not configured is rejected.
 */
import type { Logger } from 'pino';
import { aipError } from '../../../protocol/index.js';
import type { IncomingChannel } from '../../channel/mux.js';
import { handleFileChannel } from './file.js';
import { handlePortChannel, type PortPolicy } from './port.js';
import { handleStreamChannel, type StreamPolicy } from './stream.js';

export interface DeviceChannelOptions {
  /** Root folder for `file` channels, and the default root of `stream` channels' cwd; files are off without it. */
  readonly fileRoot?: string;
  /** Enables `stream` channels (command stdio); off by default, and then refused with STREAM_EXEC_DISABLED. */
  readonly stream?: StreamPolicy | false;
  /** Enables `port` channels; off by default. */
  readonly port?: PortPolicy | false;
  readonly logger?: Logger;
}

export function createDeviceChannelHandler(opts: DeviceChannelOptions): (incoming: IncomingChannel) => void {
  return (incoming) => {
    opts.logger?.debug(
      { channel: incoming.channel, kind: incoming.kind, session: incoming.sessionId },
      'channel open',
    );
    switch (incoming.kind) {
      case 'file':
        if (opts.fileRoot === undefined) break;
        handleFileChannel(incoming, opts.fileRoot).catch((e: unknown) => {
          opts.logger?.warn({ err: e }, 'file channel failed');
        });
        return;
      case 'stream':
        if (!opts.stream) return incoming.reject(aipError('STREAM_EXEC_DISABLED'));
        return handleStreamChannel(incoming, { root: opts.fileRoot, logger: opts.logger, ...opts.stream });
      case 'port':
        if (!opts.port) break;
        return handlePortChannel(incoming, opts.port);
    }
    incoming.reject(aipError('CHANNEL_KIND_UNSUPPORTED', { kind: incoming.kind }));
  };
}
