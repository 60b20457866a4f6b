/**
 * Remote execution, composed: the live typed sessions, execute, files, services and stream sockets of this node.
 * The app builds one; the HTTP routes and the transport's stream WebSockets use it.
 */
import type { ChannelRouter } from '../channel/router.js';
import type { ServerConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { SessionService } from '../records/session-service.js';
import type { ClientDirectory } from '../state/client-directory.js';
import type { Connection, SocketHandler } from '../transport/connection.js';
import { RemoteExecutor } from './execute.js';
import { RemoteFiles } from './files.js';
import { RemoteSessions } from './remote-sessions.js';
import { RemoteServices } from './services.js';
import { StreamSocket } from './stream-socket.js';

export { sessionType, SESSION_TYPES, type SessionTypeSpec } from './session-types.js';
export type { LiveRemote } from './remote-sessions.js';
export { streamSessionId, STREAM_SUBPROTOCOL } from './stream-socket.js';

export class RemoteExecution {
  readonly sessions: RemoteSessions;
  readonly exec: RemoteExecutor;
  readonly files: RemoteFiles;
  readonly services: RemoteServices;

  constructor(
    readonly config: ServerConfig,
    records: SessionService,
    private readonly directory: ClientDirectory,
    channels: ChannelRouter,
    nodeId: string,
    private readonly log: Logger,
  ) {
    this.sessions = new RemoteSessions(config, records, directory, channels, nodeId, log);
    this.exec = new RemoteExecutor(this.sessions, directory, config.executeOutputMaxBytes);
    this.files = new RemoteFiles(this.sessions, config.uploadMaxFiles);
    this.services = new RemoteServices(this.sessions, config.serviceBindHost, config.maxServicesPerSession);
  }

  /** Stream sockets that have not presented a token yet (unauthenticated; capped by --max-stream-token-waits). */
  private awaitingToken = 0;

  /** Whether another unauthenticated stream socket may open. */
  acceptsStream(): boolean {
    return this.awaitingToken < this.config.maxStreamTokenWaits;
  }

  /** Counts one more socket waiting for its token; the returned function says it no longer waits (once). */
  countTokenWait(): () => void {
    this.awaitingToken++;
    let counted = true;
    return () => {
      if (counted) this.awaitingToken--;
      counted = false;
    };
  }

  /** The handler of a stream WebSocket opened on `/sessions/{sessionId}/stream`. */
  streamSocket(conn: Connection, sessionId: string): SocketHandler {
    const tokenDecided = this.countTokenWait();
    return new StreamSocket(
      conn,
      sessionId,
      this.sessions,
      {
        tokenWaitMs: this.config.streamTokenWaitMs,
        inputMaxBytes: this.config.streamInputMaxBytes,
        highWaterMarkBytes: this.config.highWaterMarkBytes,
        tokenDecided,
      },
      this.log,
    );
  }

  /** The ws:// base of stream URLs: --public-url, else the Host the request came to. */
  streamBase(host: string | undefined): string {
    const pub = this.config.publicUrl;
    if (pub) return pub.replace(/^http/, 'ws');
    return `ws://${host ?? `${this.config.host}:${this.config.port}`}`;
  }
}
