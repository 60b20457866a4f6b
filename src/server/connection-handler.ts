/**
 * One connection's state machine and message loop (ufo-aip.md §5, §6, §16 items 2–4).
 *
 *   awaiting_register ──register ok──▶ registered ──close──▶ closed
 *          └──────bad first frame / timeout / duplicate──────▶ closed
 *
 * All per-connection state lives here (S4): the pinned identity, the logger, the registration timer.
 */
import { randomUUID } from 'node:crypto';
import {
  AipError,
  aipError,
  CloseCode,
  pythonEnumName,
  validateClientMessage,
  type ClientMessage,
  type DecodeLimits,
} from '../../protocol/index.js';
import type { Logger } from '../logger.js';
import type { Connection } from '../transport/connection.js';
import type { ServerContext } from './context.js';
import type { ClientRecord } from './registry.js';
import { isChannelFrame } from '../../protocol/channel.js';
import { isTransferFrame } from '../channel/aip-transfer.js';
import { TransferRelay } from './transfer-relay.js';

export const ConnState = { AWAITING_REGISTER: 'awaiting_register', REGISTERED: 'registered', CLOSED: 'closed' } as const;
export type ConnState = (typeof ConnState)[keyof typeof ConnState];

export class ConnectionHandler {
  state: ConnState = ConnState.AWAITING_REGISTER;
  record: ClientRecord | null = null;
  private log: Logger;
  private registrationTimer: NodeJS.Timeout | null = null;
  private transfer: TransferRelay | null = null;
  private readonly limits: DecodeLimits;

  constructor(
    readonly conn: Connection,
    private readonly ctx: ServerContext,
  ) {
    this.log = ctx.log.child({ conn: conn.id });
    this.limits = { maxFrameBytes: ctx.config.maxPayloadBytes, maxDepth: ctx.config.maxDepth };
  }

  /** Called once the socket is open. */
  open(): void {
    if (this.ctx.counters.unregistered >= this.ctx.config.maxUnregistered) {
      this.fail(aipError('TOO_MANY_UNREGISTERED', { max: this.ctx.config.maxUnregistered }), CloseCode.TOO_MANY_UNREGISTERED);
      return;
    }
    this.ctx.counters.unregistered++;
    const ms = this.ctx.config.registrationTimeoutMs;
    this.registrationTimer = setTimeout(() => this.fail(aipError('REGISTRATION_TIMEOUT', { ms }), CloseCode.REGISTRATION_TIMEOUT), ms);
    this.registrationTimer.unref();
  }

  /** Every inbound frame. Never throws. */
  message(data: ArrayBuffer | Uint8Array | string, isBinary: boolean): void {
    if (this.state === ConnState.CLOSED) return;
    try {
      if (isBinary && typeof data !== 'string' && isChannelFrame(data)) {
        if (this.state !== ConnState.REGISTERED) return this.fail(aipError('NOT_REGISTERED'), CloseCode.REGISTRATION_FAILED);
        this.ctx.channels.onFrame(this.conn, toBytes(data));
        return;
      }
      if (isBinary && this.transfer?.busy && typeof data !== 'string') {
        const err = this.transfer.binary(toBytes(data));
        if (err) this.sendError(err.message);
        return;
      }
      const raw = this.conn.codec.decode(data, isBinary, this.limits);
      if (this.state === ConnState.AWAITING_REGISTER) {
        const decoded = raw.ok ? validateClientMessage(raw.value) : raw;
        if (!decoded.ok) return this.fail(aipError('REGISTRATION_INVALID', { reason: decoded.error.message }), CloseCode.REGISTRATION_FAILED);
        return this.register(decoded.value);
      }
      if (raw.ok && isTransferFrame(raw.value)) {
        this.transfer ??= new TransferRelay(this.ctx, this.record!);
        const err = this.transfer.text(raw.value);
        if (err) this.sendError(err.message);
        return;
      }
      const decoded = raw.ok ? validateClientMessage(raw.value) : raw;
      if (!decoded.ok) {
        this.log.debug({ code: decoded.error.code }, 'invalid frame');
        this.sendError(decoded.error.message);
        return;
      }
      this.dispatch(decoded.value);
    } catch (err) {
      this.log.error({ err }, 'unhandled error while handling a frame');
      this.sendError(err instanceof AipError ? err.message : aipError('INTERNAL').message);
    }
  }

  /** The socket closed (by either side). */
  closed(code: number): void {
    if (this.state === ConnState.CLOSED) return;
    const wasRegistered = this.state === ConnState.REGISTERED;
    this.state = ConnState.CLOSED;
    this.clearRegistrationTimer(!wasRegistered);
    this.ctx.channels.onConnectionClosed(this.conn);
    this.transfer?.reset();
    const rec = this.record;
    if (!rec) return;
    this.ctx.tasks.clientGone(rec, code === CloseCode.SLOW_CONSUMER ? 'slow_consumer' : 'disconnected');
    this.ctx.registry.remove(rec.clientId, this.conn);
    this.log.info({ code }, 'client disconnected');
  }

  private register(msg: ClientMessage): void {
    if (msg.type !== 'register') return this.fail(aipError('REGISTRATION_INVALID', { reason: `first message must be 'register', got '${msg.type}'` }));
    if (!msg.client_id) return this.fail(aipError('REGISTRATION_INVALID', { reason: 'client_id is required' }));
    const metadata = msg.metadata ?? {};
    const platform = typeof metadata.platform === 'string' ? metadata.platform : this.ctx.config.platform;
    if (msg.client_type === 'constellation' && msg.target_id && !this.ctx.registry.isDeviceConnected(msg.target_id)) {
      return this.fail(aipError('TARGET_NOT_CONNECTED', { id: msg.target_id }), CloseCode.TARGET_NOT_CONNECTED);
    }
    const systemInfo = msg.client_type === 'device' && isObject(metadata.system_info) ? metadata.system_info : null;
    const record: ClientRecord = {
      clientId: msg.client_id,
      clientType: msg.client_type,
      targetId: msg.client_type === 'constellation' ? msg.target_id : null,
      platform,
      conn: this.conn,
      metadata,
      systemInfo,
      connectedAt: new Date().toISOString(),
    };
    if (!this.ctx.registry.add(record)) {
      return this.fail(aipError('DUPLICATE_CLIENT_ID', { id: msg.client_id }), CloseCode.DUPLICATE_CLIENT_ID);
    }
    this.record = record;
    this.state = ConnState.REGISTERED;
    this.clearRegistrationTimer(true);
    this.log = this.log.child({ client_id: record.clientId, client_type: record.clientType });
    this.conn.send({ type: 'heartbeat', status: 'ok', timestamp: now(), response_id: randomUUID() });
    this.log.info({ platform }, 'client registered');
  }

  private dispatch(msg: ClientMessage): void {
    const rec = this.record!;
    // Identity pinning (§5.5). Heartbeats skip the role check (Q1): Galaxy sends client_type "device" there.
    if (msg.client_id !== null && msg.client_id !== rec.clientId) return this.sendError(aipError('CLIENT_ID_MISMATCH').message);
    if (msg.type !== 'heartbeat' && msg.client_type !== rec.clientType) return this.sendError(aipError('CLIENT_TYPE_MISMATCH').message);
    const pinned: ClientMessage = { ...msg, client_id: rec.clientId, client_type: rec.clientType };

    switch (pinned.type) {
      case 'heartbeat':
        this.conn.send({ type: 'heartbeat', status: 'ok', timestamp: now(), response_id: randomUUID() });
        return;
      case 'task': {
        const r = this.ctx.tasks.start(rec, pinned);
        if (r instanceof AipError) {
          this.log.info({ code: r.code, session_id: pinned.session_id }, 'task refused');
          this.sendError(r.message);
        }
        return;
      }
      case 'command_results':
        if (!this.ctx.tasks.deliverResults(rec, pinned)) this.log.debug({ session_id: pinned.session_id }, 'command_results dropped');
        return;
      case 'device_info_request':
        return this.deviceInfo(rec, pinned);
      case 'device_info_response':
        this.log.debug('device_info_response received (pull model reserved)');
        return;
      case 'error':
        this.log.info({ client_error: pinned.error }, 'client reported an error');
        this.sendError(aipError('CLIENT_ERROR_ECHO', { error: pinned.error }).message);
        return;
      default:
        this.sendError(aipError('UNKNOWN_MESSAGE_TYPE', { pyName: pythonEnumName(pinned.type) }).message);
    }
  }

  private deviceInfo(rec: ClientRecord, msg: ClientMessage): void {
    if (rec.clientType !== 'constellation') return this.sendError(aipError('DEVICE_INFO_ROLE').message);
    const deviceId = msg.target_id ?? rec.targetId;
    if (rec.targetId && deviceId !== rec.targetId) return this.sendError(aipError('DEVICE_INFO_NOT_AUTHORIZED').message);
    const info = deviceId ? this.ctx.registry.deviceSystemInfo(deviceId) : null;
    this.conn.send({
      type: 'device_info_response',
      status: 'ok',
      timestamp: now(),
      response_id: msg.request_id,
      result: info ?? { error: aipError('DEVICE_INFO_MISSING', { id: String(deviceId) }).message },
    });
  }

  private sendError(text: string): void {
    this.conn.send({ type: 'error', status: 'error', error: text, timestamp: now(), response_id: randomUUID() });
  }

  /** Registration failure: an error frame (harmless to UFO clients, Q10), then close. */
  private fail(err: AipError, code: number = CloseCode.REGISTRATION_FAILED): void {
    if (this.state === ConnState.CLOSED) return;
    this.log.info({ code: err.code, close: code, reason: err.message }, 'registration failed');
    this.sendError(err.message);
    this.conn.close(code, err.message.slice(0, 120));
  }

  private clearRegistrationTimer(countedUnregistered: boolean): void {
    if (this.registrationTimer) {
      clearTimeout(this.registrationTimer);
      this.registrationTimer = null;
      if (countedUnregistered) this.ctx.counters.unregistered--;
    }
  }
}

function now(): string {
  return new Date().toISOString();
}
function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
function toBytes(data: ArrayBuffer | Uint8Array): Uint8Array {
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}
