/**
 * One connection's state machine and frame loop (ufo-aip.md §5, §6, §16 items 2–4).
 *
 *   awaiting_register ──register──▶ registering ──directory ok──▶ registered ──close──▶ closed
 *          └──────── bad first frame / timeout / duplicate / close ────────▶ closed
 *
 * While the directory decides a registration (it may be shared with other nodes), later frames wait in a
 * bounded queue and are replayed in order. All per-connection state lives here (S4): the pinned identity, the
 * logger, the registration timer.
 */
import { isStorableText, unstorableField } from '../lib/storable-text.js';
import { jsonSizeEstimate } from '../lib/json-bound.js';
import {
  AipError,
  aipError,
  CloseCode,
  validateClientMessage,
  type ClientMessage,
  type DecodeLimits,
} from '../../protocol/index.js';
import { isChannelFrame } from '../../protocol/channel.js';
import { isTransferFrame } from '../channel/aip-transfer.js';
import { Fsm, type TransitionTable } from '../lib/fsm.js';
import { uuid } from '../lib/uuid.js';
import type { Logger } from '../logger.js';
import { isClusterRefusal, isDevice, type ClientInfo } from '../state/client-directory.js';
import type { Connection, SocketHandler } from '../transport/connection.js';
import type { ServerContext } from './context.js';
import { dispatchMessage, now, sendError, type DispatchScope } from './dispatch.js';
import { WirePeer } from './peer.js';
import { TransferRelay } from './transfer-relay.js';

export const ConnState = {
  AWAITING_REGISTER: 'awaiting_register',
  REGISTERING: 'registering',
  REGISTERED: 'registered',
  CLOSED: 'closed',
} as const;
export type ConnState = (typeof ConnState)[keyof typeof ConnState];

export const CONN_TRANSITIONS: TransitionTable<ConnState> = {
  awaiting_register: ['registering', 'closed'],
  registering: ['registered', 'closed'],
  registered: ['closed'],
  closed: [],
};

type Frame = { data: ArrayBuffer | Uint8Array | string; isBinary: boolean };

/** One set of decode limits per server context, shared by its connections (not an object per connection). */
const LIMITS = new WeakMap<ServerContext, DecodeLimits>();
function limitsOf(ctx: ServerContext): DecodeLimits {
  let l = LIMITS.get(ctx);
  if (!l) {
    l = {
      maxFrameBytes: ctx.config.maxPayloadBytes,
      maxDepth: ctx.config.maxDepth,
      maxContainers: ctx.config.maxContainers,
    };
    LIMITS.set(ctx, l);
  }
  return l;
}

/**
 * A registered connection's dispatch scope. Its pino child logger (connection and client ids) is made when
 * something is logged, not held: an idle connection keeps no logger (issue 14, memory per idle device).
 */
class ConnScope implements DispatchScope {
  constructor(
    readonly ctx: ServerContext,
    readonly client: ClientInfo,
    readonly peer: WirePeer,
    private readonly connId: string,
  ) {}

  get log(): Logger {
    return this.ctx.log.child({
      conn: this.connId,
      client_id: this.client.clientId,
      client_type: this.client.clientType,
    });
  }
}

export class ConnectionHandler implements SocketHandler {
  private readonly fsm = new Fsm(CONN_TRANSITIONS, ConnState.AWAITING_REGISTER, 'connection');
  readonly peer: WirePeer;
  private scope: ConnScope | null = null;
  private registrationTimer: NodeJS.Timeout | null = null;
  private transfer: TransferRelay | null = null;
  private readonly limits: DecodeLimits;
  /** Frames that arrived while registering, replayed once it is decided. */
  private held: Frame[] = [];
  private heldBytes = 0;

  constructor(
    readonly socket: Connection,
    private readonly ctx: ServerContext,
  ) {
    this.peer = new WirePeer(socket);
    this.limits = limitsOf(ctx);
  }

  /** This connection's logger, made on use (see ConnScope). */
  private get log(): Logger {
    return this.scope?.log ?? this.ctx.log.child({ conn: this.socket.id });
  }

  get state(): ConnState {
    return this.fsm.state;
  }

  /** The registered client, or null. */
  get record(): ClientInfo | null {
    return this.scope?.client ?? null;
  }

  /** Called once the socket is open. */
  open(): void {
    if (this.ctx.counters.unregistered >= this.ctx.config.maxUnregistered) {
      this.fail(
        aipError('TOO_MANY_UNREGISTERED', { max: this.ctx.config.maxUnregistered }),
        CloseCode.TOO_MANY_UNREGISTERED,
      );
      return;
    }
    this.ctx.counters.unregistered++;
    const ms = this.ctx.config.registrationTimeoutMs;
    this.registrationTimer = setTimeout(
      () => this.fail(aipError('REGISTRATION_TIMEOUT', { ms }), CloseCode.REGISTRATION_TIMEOUT),
      ms,
    );
    this.registrationTimer.unref();
  }

  /** Every inbound frame. Never throws. */
  message(data: ArrayBuffer | Uint8Array | string, isBinary: boolean): void {
    const state = this.fsm.state;
    if (state === ConnState.CLOSED) return;
    if (state === ConnState.REGISTERING) return this.hold(data, isBinary);
    try {
      this.frame(data, isBinary);
    } catch (err) {
      this.log.error({ err }, 'unhandled error while handling a frame');
      sendError(this.peer, err instanceof AipError ? err.message : aipError('INTERNAL').message);
    }
  }

  /** The socket closed (by either side). */
  closed(code: number): void {
    const state = this.fsm.state;
    if (state === ConnState.CLOSED) return;
    this.fsm.go(ConnState.CLOSED);
    this.held = [];
    this.clearRegistrationTimer(state !== ConnState.REGISTERED);
    this.ctx.channels.onConnectionClosed(this.peer);
    this.transfer?.reset();
    const client = this.scope?.client;
    if (!client) return;
    const reason = code === CloseCode.SLOW_CONSUMER ? 'slow_consumer' : 'disconnected';
    this.ctx.tasks.clientGone(client, reason);
    void this.ctx.directory
      .unregister(client.clientId, this.peer)
      .catch((err: unknown) => this.log.error({ err }, 'unregister failed'));
    this.ctx.events.emit('client.gone', {
      clientId: client.clientId,
      clientType: client.clientType,
      reason,
      code,
    });
    if (this.ctx.log.isLevelEnabled('info')) this.log.info({ code }, 'client disconnected');
  }

  private frame(data: ArrayBuffer | Uint8Array | string, isBinary: boolean): void {
    const size = typeof data === 'string' ? data.length : data.byteLength;
    if (size > this.limits.maxFrameBytes) {
      // The socket layer accepts frames up to a multiple of the limit so that this answer can reach the client.
      return this.closeWith(
        aipError('FRAME_TOO_LARGE', { size, max: this.limits.maxFrameBytes }),
        CloseCode.MESSAGE_TOO_BIG,
      );
    }
    const registered = this.fsm.state === ConnState.REGISTERED;
    // A UFO transfer in progress owns the next binary frame, whatever its first byte (its payload may start 0xC1).
    if (isBinary && this.transfer?.busy && typeof data !== 'string') {
      const err = this.transfer.binary(toBytes(data));
      if (err) sendError(this.peer, err.message);
      return;
    }
    if (isBinary && typeof data !== 'string' && isChannelFrame(data)) {
      if (!registered) return this.fail(aipError('NOT_REGISTERED'), CloseCode.REGISTRATION_FAILED);
      this.ctx.channels.onFrame(this.peer, toBytes(data));
      return;
    }
    const raw = this.peer.codec.decode(data, isBinary, this.limits);
    if (!registered) {
      const decoded = raw.ok ? validateClientMessage(raw.value) : raw;
      if (!decoded.ok)
        return this.fail(
          aipError('REGISTRATION_INVALID', { reason: decoded.error.message }),
          CloseCode.REGISTRATION_FAILED,
        );
      return this.register(decoded.value);
    }
    if (raw.ok && isTransferFrame(raw.value)) {
      this.transfer ??= new TransferRelay(this.ctx, this.scope!.client);
      const err = this.transfer.text(raw.value);
      if (err) sendError(this.peer, err.message);
      return;
    }
    if (!raw.ok && raw.error.kind === 'INVALID_UTF8' && !isBinary)
      return this.closeWith(raw.error, CloseCode.INVALID_PAYLOAD);
    const decoded = raw.ok ? validateClientMessage(raw.value) : raw;
    if (!decoded.ok) {
      if (this.ctx.log.isLevelEnabled('debug')) this.log.debug({ code: decoded.error.code }, 'invalid frame');
      return sendError(this.peer, decoded.error.message);
    }
    dispatchMessage(this.scope!, decoded.value);
  }

  private register(msg: ClientMessage): void {
    if (msg.type !== 'register')
      return this.fail(
        aipError('REGISTRATION_INVALID', { reason: `first message must be 'register', got '${msg.type}'` }),
      );
    if (!msg.client_id)
      return this.fail(aipError('REGISTRATION_INVALID', { reason: 'client_id is required' }));
    if (!isStorableText(msg.client_id))
      return this.fail(aipError('REGISTRATION_INVALID', { reason: unstorableField('client_id') }));
    const metadata = msg.metadata ?? {};
    const maxMeta = this.ctx.config.maxRegistrationMetadataBytes;
    if (jsonSizeEstimate(metadata) > maxMeta)
      // a walk, never a write: cheap whatever its size
      return this.fail(
        aipError('REGISTRATION_INVALID', {
          reason: `metadata is over ${maxMeta} bytes as JSON (--max-registration-metadata-bytes)`,
        }),
      );
    const platform = typeof metadata.platform === 'string' ? metadata.platform : this.ctx.config.platform;
    if (
      msg.client_type === 'constellation' &&
      msg.target_id &&
      !isDevice(this.ctx.directory, msg.target_id)
    ) {
      return this.fail(
        aipError('TARGET_NOT_CONNECTED', { id: msg.target_id }),
        CloseCode.TARGET_NOT_CONNECTED,
      );
    }
    const client: ClientInfo = {
      clientId: msg.client_id,
      clientType: msg.client_type,
      targetId: msg.client_type === 'constellation' ? msg.target_id : null,
      platform,
      metadata,
      systemInfo:
        msg.client_type === 'device' && isObject(metadata.system_info) ? metadata.system_info : null,
      connectedAt: now(),
    };
    this.fsm.go(ConnState.REGISTERING);
    this.ctx.directory.register(client, this.peer).then(
      (ok) => this.registered(client, ok),
      (err: unknown) => {
        // A cluster node that cannot reach Redis, or was fenced, says so: the client may retry (here or elsewhere).
        if (isClusterRefusal(err)) return this.fail(err, CloseCode.CLUSTER_RETRY);
        this.log.error({ err }, 'directory refused to register');
        this.fail(aipError('INTERNAL'), CloseCode.REGISTRATION_FAILED);
      },
    );
  }

  private registered(client: ClientInfo, ok: boolean): void {
    if (this.fsm.state !== ConnState.REGISTERING) {
      // Closed while the directory decided: give the id back.
      if (ok) void this.ctx.directory.unregister(client.clientId, this.peer).catch(() => undefined);
      return;
    }
    if (!ok)
      return this.fail(
        aipError('DUPLICATE_CLIENT_ID', { id: client.clientId }),
        CloseCode.DUPLICATE_CLIENT_ID,
      );
    this.fsm.go(ConnState.REGISTERED);
    this.clearRegistrationTimer(true);
    this.scope = new ConnScope(this.ctx, client, this.peer, this.socket.id);
    this.peer.send({ type: 'heartbeat', status: 'ok', timestamp: now(), response_id: uuid() });
    this.ctx.events.emit('client.registered', {
      clientId: client.clientId,
      clientType: client.clientType,
      platform: client.platform,
      connId: this.socket.id,
      codec: this.peer.codec.name,
    });
    if (this.ctx.log.isLevelEnabled('info'))
      this.log.info({ platform: client.platform }, 'client registered');
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (const f of held) this.message(f.data, f.isBinary);
  }

  private hold(data: ArrayBuffer | Uint8Array | string, isBinary: boolean): void {
    const size = typeof data === 'string' ? data.length : data.byteLength;
    if (this.heldBytes + size > this.ctx.config.registeringBufferBytes) {
      return this.fail(
        aipError('REGISTRATION_INVALID', { reason: 'too much sent before registration was confirmed' }),
      );
    }
    // uWS reuses its buffer after the callback: keep a copy.
    this.held.push({ data: typeof data === 'string' ? data : data.slice(0), isBinary });
    this.heldBytes += size;
  }

  /** Registration failure: an error frame (harmless to UFO clients, Q10), then close. */
  private fail(err: AipError, code: number = CloseCode.REGISTRATION_FAILED): void {
    if (this.fsm.state === ConnState.CLOSED) return;
    this.ctx.events.emit('client.refused', { reason: err.kind });
    this.log.info({ code: err.code, close: code, reason: err.message }, 'registration failed');
    this.closeWith(err, code);
  }

  /** An error frame with the text, then a close with `code` and the text as its reason. */
  private closeWith(err: AipError, code: number): void {
    if (this.fsm.state === ConnState.CLOSED) return;
    if (code !== CloseCode.REGISTRATION_FAILED)
      this.log.info({ code: err.code, close: code, reason: err.message }, 'closing connection');
    sendError(this.peer, err.message);
    this.socket.close(code, err.message); // the transport cuts it to what a close frame holds
  }

  private clearRegistrationTimer(countedUnregistered: boolean): void {
    if (this.registrationTimer) {
      clearTimeout(this.registrationTimer);
      this.registrationTimer = null;
      if (countedUnregistered) this.ctx.counters.unregistered--;
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
function toBytes(data: ArrayBuffer | Uint8Array): Uint8Array {
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}
