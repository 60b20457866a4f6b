/** What every connection handler shares: config, registry, tasks, channels and counters. No socket state. */
import type { Connection } from '../transport/connection.js';
import type { ServerConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { ClientRegistry } from './registry.js';
import type { TaskService } from './tasks.js';

/** The data-channel router, as the connection handler sees it. */
export interface ChannelSink {
  onFrame(conn: Connection, bytes: Uint8Array): void;
  onConnectionClosed(conn: Connection): void;
  onSessionEnded(sessionId: string): void;
}

export interface ServerContext {
  readonly config: ServerConfig;
  readonly log: Logger;
  readonly registry: ClientRegistry;
  readonly tasks: TaskService;
  readonly channels: ChannelSink;
  readonly counters: { unregistered: number };
}
