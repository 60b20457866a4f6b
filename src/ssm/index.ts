/**
 * The SSM-compatible stream endpoint (`ws://HOST/sessions/{id}/ssm`, docs/ssm.md): AWS's session-manager-plugin
 * talks to a typed session's device through it. One SsmSession per aipd session holds the data channel's state
 * across sockets; each socket is an SsmSocket. Nothing here knows uWS or msgpackr: sockets are `Connection`s.
 */
import { aipError } from '../../protocol/index.js';
import type { ServerConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { RemoteExecution } from '../remote/index.js';
import type { LiveRemote, RemoteSessions } from '../remote/remote-sessions.js';
import type { Connection, SocketHandler } from '../transport/connection.js';
import type { SsmOptions } from './session-plan.js';
import { SsmSession, type SsmStats } from './ssm-session.js';
import { SsmSocket, type SsmAttacher } from './ssm-socket.js';

export { ssmSessionId } from './ssm-socket.js';
export type { SsmStats } from './ssm-session.js';

export function ssmOptions(config: ServerConfig): SsmOptions {
  return {
    agentVersion: config.ssmAgentVersion,
    handshakeTimeoutMs: config.ssmHandshakeTimeoutMs,
    resumeGraceMs: config.ssmResumeGraceMs,
    resendIntervalMs: config.ssmResendIntervalMs,
    closeWaitMs: config.ssmCloseWaitMs,
    chunkBytes: config.ssmChunkBytes,
    maxFrameBytes: config.ssmMaxFrameBytes,
    inputMaxBytes: config.streamInputMaxBytes,
    highWaterMarkBytes: config.highWaterMarkBytes,
    firstSizeWaitMs: config.ssmFirstSizeWaitMs,
    outgoingWindow: config.ssmOutgoingWindow,
    incomingBufferMessages: config.ssmIncomingBufferMessages,
    incomingBufferBytes: config.ssmIncomingBufferBytes,
    maxResendAttempts: config.ssmMaxResendAttempts,
    resumeAckWaitMs: config.ssmResumeAckWaitMs,
    mux: { maxStreams: config.ssmMaxMuxStreams, keepaliveMs: config.ssmSmuxKeepaliveMs },
  };
}

export class SsmEndpoint implements SsmAttacher {
  private readonly sessions = new Map<string, SsmSession>();
  private readonly opts: SsmOptions;
  readonly remote: RemoteSessions;
  readonly tokenWaitMs: number;

  constructor(
    private readonly remoteExecution: RemoteExecution,
    private readonly log: Logger,
  ) {
    this.remote = remoteExecution.sessions;
    this.opts = ssmOptions(remoteExecution.config);
    this.tokenWaitMs = remoteExecution.config.streamTokenWaitMs;
  }

  /** Whether another unauthenticated socket may open (shared with the stream sockets' cap). */
  accepts(): boolean {
    return this.remoteExecution.acceptsStream();
  }

  /** The handler of a WebSocket opened on `/sessions/{sessionId}/ssm`. */
  socket(conn: Connection, sessionId: string): SocketHandler {
    return new SsmSocket(conn, sessionId, this, this.remoteExecution.countTokenWait(), this.log);
  }

  /**
   * The data-channel state of `live` for the plugin process `clientId`: the existing one when that client comes
   * back (a resume), a new one otherwise. A Port session's state is replaced by a new client; a shell's is not
   * (its shell belongs to the first client): SSM_CLIENT_BUSY; the replaced Port client is told SSM_CLIENT_REPLACED.
   */
  sessionFor(live: LiveRemote, clientId: string): SsmSession {
    const cur = this.sessions.get(live.id);
    if (cur && cur.state !== 'closed') {
      if (cur.clientId === clientId) return cur;
      if (live.type.name !== 'Port') throw aipError('SSM_CLIENT_BUSY', { sid: live.id });
      cur.fail(aipError('SSM_CLIENT_REPLACED', { sid: live.id }));
    }
    const s = new SsmSession(
      live,
      this.remote,
      clientId,
      this.opts,
      this.log.child({ session_id: live.id, ssm_client: clientId }),
      (gone) => {
        if (this.sessions.get(live.id) === gone) this.sessions.delete(live.id);
      },
    );
    this.sessions.set(live.id, s);
    return s;
  }

  /** The data channel of session `id` (tests and diagnostics), or null. */
  stats(id: string): SsmStats | null {
    return this.sessions.get(id)?.stats() ?? null;
  }

  get size(): number {
    return this.sessions.size;
  }
}
