/** What every connection handler shares: config, state, tasks, channels and counters. No socket state. */
import type { ClientMessage } from '../../protocol/index.js';
import type { ServerConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { ClientDirectory, ClientInfo, ClientLink } from '../state/client-directory.js';
import type { EventSink } from '../state/events.js';
import type { TaskService } from './tasks.js';

/** The data-channel router, as the connection handler sees it. */
export interface ChannelSink {
  onFrame(peer: ClientLink, bytes: Uint8Array): void;
  onConnectionClosed(peer: ClientLink): void;
}

/** Another owner of command batches (remote sessions' execute calls); tried when no task claims the results. */
export interface ResultsSink {
  deliverResults(sender: ClientInfo, msg: ClientMessage): boolean;
}

export interface ServerContext {
  readonly config: ServerConfig;
  readonly log: Logger;
  readonly directory: ClientDirectory;
  readonly events: EventSink;
  readonly tasks: TaskService;
  readonly channels: ChannelSink;
  /** Set once the remote sessions are wired (src/app); null in contexts without them. */
  readonly extraResults: ResultsSink | null;
  readonly counters: { unregistered: number };
}
