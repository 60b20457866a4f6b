/**
 * One WebSocket on `/sessions/{id}/ssm`, as AWS's session-manager-plugin opens it (no subprotocol):
 *
 *   awaiting_token ──OpenDataChannelInput, token ok──▶ attached ──close──▶ closed
 *         └──── no token in time / bad token / session not live / device offline / busy ──▶ closed
 *
 * The first frame is the text JSON `OpenDataChannelInput` whose `TokenValue` is a single-use session token
 * (`token_value`). Every refusal is a `channel_closed` whose Output says why (the plugin prints it), then close. (A
 * socket for a session not live on this node never gets here: the upgrade is refused with 404, see server.ts.)
 * Once attached, frames go to the session's SsmSession (created by the first socket, resumed by later ones).
 */
import { aipError, type AipError } from '../../protocol/index.js';
import { Fsm, type TransitionTable } from '../lib/fsm.js';
import type { Logger } from '../logger.js';
import type { LiveRemote, RemoteSessions } from '../remote/remote-sessions.js';
import { sessionPathId } from '../remote/stream-socket.js';
import { TokenGate } from '../remote/token-gate.js';
import type { Connection, SocketHandler } from '../transport/connection.js';
import { asAipError } from './bridge.js';
import { encodeChannelClosed } from './codec.js';
import { parseOpenDataChannel } from './handshake.js';
import type { SsmSession } from './ssm-session.js';

type SocketState = 'awaiting_token' | 'opening' | 'attached' | 'closed';
const TRANSITIONS: TransitionTable<SocketState> = {
  awaiting_token: ['opening', 'closed'],
  opening: ['attached', 'closed'],
  attached: ['closed'],
  closed: [],
};

/** `/sessions/{id}/ssm` → the session id, or null. */
export function ssmSessionId(path: string): string | null {
  return sessionPathId(path, 'ssm');
}

/** What the socket needs from the endpoint: the session state for a client (new, resumed, or an error). */
export interface SsmAttacher {
  readonly remote: RemoteSessions;
  readonly tokenWaitMs: number;
  sessionFor(live: LiveRemote, clientId: string): SsmSession;
}

export class SsmSocket implements SocketHandler {
  private readonly fsm = new Fsm(TRANSITIONS, 'awaiting_token', 'ssm socket');
  private readonly log: Logger;
  private readonly gate: TokenGate;
  private session: SsmSession | null = null;

  constructor(
    private readonly conn: Connection,
    private readonly sessionId: string,
    private readonly endpoint: SsmAttacher,
    tokenDecided: () => void,
    log: Logger,
  ) {
    this.log = log.child({ conn: conn.id, session_id: sessionId });
    this.gate = new TokenGate(
      endpoint.tokenWaitMs,
      () => this.refuse(aipError('STREAM_TOKEN_MISSING', { ms: endpoint.tokenWaitMs })),
      tokenDecided,
    );
  }

  message(data: ArrayBuffer | Uint8Array | string, isBinary: boolean): void {
    const bytes =
      typeof data === 'string' ? Buffer.from(data) : data instanceof Uint8Array ? data : new Uint8Array(data);
    if (this.fsm.state === 'attached') return this.toSession((s) => s.message(bytes));
    if (this.fsm.state !== 'awaiting_token') return;
    const open = isBinary ? null : parseOpenDataChannel(bytes);
    if (!open) return this.refuse(aipError('SSM_FIRST_FRAME'));
    this.fsm.go('opening');
    if (!this.gate.redeem(this.endpoint.remote.tokens, this.sessionId, open.token))
      return this.refuse(aipError('STREAM_TOKEN_INVALID'));
    this.endpoint.remote.get(this.sessionId).then(
      (live) => {
        if (this.fsm.state !== 'opening') return;
        try {
          this.endpoint.remote.capabilities(live); // the device must be connected
          const session = this.endpoint.sessionFor(live, open.clientId);
          this.fsm.go('attached');
          this.session = session;
          session.attach(this.conn);
        } catch (err) {
          // A session that took the socket must not keep it (or its hold on the idle timer) after a failed attach.
          this.session?.fail(asAipError(err));
          this.refuse(asAipError(err));
        }
      },
      (err: unknown) => this.refuse(asAipError(err)),
    );
  }

  closed(): void {
    if (this.fsm.state === 'closed') return;
    const wasAttached = this.fsm.state === 'attached';
    this.finish();
    if (wasAttached) this.session?.detach(this.conn);
  }

  drained(): void {
    if (this.fsm.state === 'attached') this.toSession((s) => s.drained());
  }

  /**
   * Calls into the session from the transport's handler. A throw there would escape into uWS and end the
   * process, so any throw (a bug) fails the session instead: logged, `channel_closed`, the socket closed.
   */
  private toSession(call: (s: SsmSession) => void): void {
    const session = this.session!;
    try {
      call(session);
    } catch (err) {
      this.log.error({ err }, 'ssm data channel failed on an unexpected error');
      session.fail(asAipError(err));
    }
  }

  private refuse(err: AipError): void {
    if (this.fsm.state === 'closed') return;
    this.log.info({ err: err.message }, 'ssm data channel refused');
    this.finish();
    this.conn.send(encodeChannelClosed(this.sessionId, err.message), true);
    this.conn.close(1000, 'channel closed');
  }

  private finish(): void {
    this.gate.decide();
    if (this.fsm.state !== 'closed') this.fsm.go('closed');
  }
}
