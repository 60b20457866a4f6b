/**
 * One logical client connection to an AIP server: the `ws` socket, the wire codec, registration,
 * optional heartbeats and reconnection with exponential backoff.
 *
 * Registration follows UFO's clients (ufo-aip.md §5.4, §12): after sending `register`, the first server
 * frame decides it. `heartbeat`/`ok` means registered; anything else fails with the frame's `error` text.
 * After a registered connection drops, the connection re-registers with a fresh `register` frame (the
 * server has no resume, §8.2). Frames after registration are emitted as `frame`.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { WebSocket, type RawData } from 'ws';
import {
  decodeServerMessage,
  encodeClientMessage,
  type ClientMessageInput,
  type ServerMessage,
  type WireCodec,
} from '../../protocol/index.js';

export interface ReconnectOptions {
  /** First delay; default 500 ms. */
  initialDelayMs?: number;
  /** Cap on the delay; default 10 s. */
  maxDelayMs?: number;
  /** Attempts after a drop before giving up; default unbounded (it retries until its owner closes it). */
  maxRetries?: number;
}

export const RECONNECT_DEFAULTS: Required<ReconnectOptions> = {
  initialDelayMs: 500,
  maxDelayMs: 10_000,
  maxRetries: Number.POSITIVE_INFINITY,
};

export interface ConnectionOptions {
  /** Server WebSocket URL, e.g. ws://127.0.0.1:5000/ws; the token is added as the `token` query parameter. */
  url: string;
  token: string;
  codec: WireCodec;
  reconnect: ReconnectOptions | false;
  /** Interval of C→S `heartbeat` frames while registered; 0 turns them off. */
  heartbeatIntervalMs: number;
  /** Limit on the WebSocket opening handshake. */
  handshakeTimeoutMs?: number;
  logger: Logger;
  /** Builds the `register` frame (called for every attempt, so timestamps are fresh). */
  registerMessage(): ClientMessageInput;
  heartbeatMessage(): ClientMessageInput;
}

export interface DisconnectInfo {
  code: number;
  reason: string;
  /** True when a reconnect is scheduled; false after close() or when giving up. */
  willReconnect: boolean;
}

export interface ReconnectingInfo {
  /** 1-based attempt number. */
  attempt: number;
  delayMs: number;
}

export interface ConnectionEvents {
  frame: [msg: ServerMessage];
  registered: [info: { reconnected: boolean }];
  disconnected: [info: DisconnectInfo];
  reconnecting: [info: ReconnectingInfo];
  error: [err: Error];
}

/** Sees every binary frame before AIP decoding; returns true when it consumed the frame (e.g. a channel frame). */
export type BinaryFrameHandler = (bytes: Uint8Array) => boolean;

type State = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Socket data as `ws` delivers it, to bytes the codecs accept. */
function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  return data instanceof ArrayBuffer ? new Uint8Array(data) : data;
}

export class AipConnection extends EventEmitter<ConnectionEvents> {
  private state: State = 'idle';
  private ws: WebSocket | null = null;
  /** The socket of an attempt still registering, so close() can abort it. */
  private attemptWs: WebSocket | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private retries = 0;
  private binaryHandler: BinaryFrameHandler | null = null;
  private readonly url: string;
  private readonly reconnect: Required<ReconnectOptions> | null;

  constructor(private readonly opts: ConnectionOptions) {
    super();
    const u = new URL(opts.url);
    u.searchParams.set('token', opts.token);
    this.url = u.toString();
    this.reconnect = opts.reconnect === false ? null : { ...RECONNECT_DEFAULTS, ...opts.reconnect };
  }

  get codec(): WireCodec {
    return this.opts.codec;
  }

  /** True while a registered socket is open. */
  get isOpen(): boolean {
    return this.state === 'open' && this.ws?.readyState === WebSocket.OPEN;
  }

  /** True between a drop and the next registration, while it retries. */
  get reconnecting(): boolean {
    return this.state === 'reconnecting';
  }

  /** Opens and registers. Rejects with the server's error text (or the socket error) on failure; no retry. */
  async connect(): Promise<void> {
    if (this.state !== 'idle' && this.state !== 'closed')
      throw new Error(`connect() called while ${this.state}`);
    this.state = 'connecting';
    this.retries = 0;
    try {
      await this.attempt();
    } catch (err) {
      this.state = 'closed';
      throw err;
    }
    if (this.state !== 'connecting') return; // close() ran meanwhile
    this.opened(false);
  }

  /** Encodes and sends; returns false if there is no registered socket. */
  send(msg: ClientMessageInput): boolean {
    const ws = this.ws;
    if (!ws || this.state !== 'open' || ws.readyState !== WebSocket.OPEN) return false;
    const data = encodeClientMessage(this.opts.codec, msg);
    ws.send(data, { binary: this.opts.codec.binary }, (err) => {
      if (err) this.raise(err);
    });
    return true;
  }

  /** Sends one pre-encoded binary frame (e.g. a data-channel frame); false if there is no registered socket. */
  sendBinary(frame: Uint8Array): boolean {
    const ws = this.ws;
    if (!ws || this.state !== 'open' || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(frame, { binary: true }, (err) => {
      if (err) this.raise(err);
    });
    return true;
  }

  /** Installs (or removes, with null) the handler that may consume binary frames before AIP decoding. */
  setBinaryFrameHandler(handler: BinaryFrameHandler | null): void {
    this.binaryHandler = handler;
  }

  /** Closes the socket (code 1000) and stops reconnecting. Resolves once the socket has closed. */
  async close(): Promise<void> {
    if (this.state === 'closed' && !this.ws) return;
    this.state = 'closed';
    this.stopHeartbeat();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.attemptWs?.terminate();
    this.attemptWs = null;
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => ws.terminate(), 2000);
      ws.once('close', () => {
        clearTimeout(force);
        resolve();
      });
      ws.close(1000, 'client closing');
    });
  }

  /** One socket: handshake, `register`, first frame. Resolves once registered (the socket is then live). */
  private attempt(): Promise<void> {
    const { codec } = this.opts;
    return new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(this.url, codec.subprotocol ? [codec.subprotocol] : [], {
        handshakeTimeout: this.opts.handshakeTimeoutMs ?? 10_000,
      });
      this.attemptWs = ws;
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        if (this.attemptWs === ws) this.attemptWs = null;
        if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.terminate();
        reject(err);
      };
      ws.on('open', () => {
        ws.send(encodeClientMessage(codec, this.opts.registerMessage()), { binary: codec.binary });
      });
      ws.on('message', (data, isBinary) => {
        if (settled) {
          if (this.ws === ws) this.onData(data, isBinary);
          return;
        }
        const decoded = decodeServerMessage(codec, toBytes(data), isBinary);
        if (!decoded.ok) return fail(new Error(`Invalid registration reply: ${decoded.error.message}`));
        const msg = decoded.value;
        if (msg.type !== 'heartbeat' || msg.status !== 'ok')
          return fail(new Error(msg.error ?? `Registration failed: got ${msg.type}/${msg.status}`));
        if (this.state === 'closed') return fail(new Error('Client closed'));
        settled = true;
        this.attemptWs = null;
        this.ws = ws;
        resolve();
      });
      ws.on('error', (err) => {
        if (!settled) fail(err);
        else this.raise(err);
      });
      ws.on('close', (code, reason) => {
        const text = reason.toString();
        if (!settled) {
          fail(new Error(`Connection closed before registration (code ${code}${text ? `: ${text}` : ''})`));
        } else if (this.ws === ws) {
          this.dropped(code, text);
        }
      });
    });
  }

  private opened(reconnected: boolean): void {
    this.state = 'open';
    this.retries = 0;
    this.startHeartbeat();
    this.opts.logger.debug({ reconnected }, 'registered');
    this.emit('registered', { reconnected });
  }

  private onData(data: RawData, isBinary: boolean): void {
    const bytes = toBytes(data);
    if (isBinary && this.binaryHandler) {
      try {
        if (this.binaryHandler(bytes)) return;
      } catch (err) {
        this.raise(err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
    const decoded = decodeServerMessage(this.opts.codec, bytes, isBinary);
    if (!decoded.ok) {
      this.raise(new Error(`Ignored an invalid server frame: ${decoded.error.message}`));
      return;
    }
    this.emit('frame', decoded.value);
  }

  private dropped(code: number, reason: string): void {
    this.ws = null;
    this.stopHeartbeat();
    const willReconnect = this.state === 'open' && this.reconnect !== null;
    this.opts.logger.info({ code, reason, willReconnect }, 'connection lost');
    // Set before the event, so its listeners see `reconnecting` (and a close() in one of them is not undone).
    this.state = willReconnect ? 'reconnecting' : 'closed';
    this.emit('disconnected', { code, reason, willReconnect });
    if (willReconnect) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const rc = this.reconnect;
    if (!rc || this.state !== 'reconnecting') return;
    if (this.retries >= rc.maxRetries) {
      this.state = 'closed';
      this.opts.logger.warn({ retries: this.retries }, 'giving up reconnecting');
      this.emit('disconnected', {
        code: 1006,
        reason: `gave up after ${this.retries} attempts`,
        willReconnect: false,
      });
      return;
    }
    const base = Math.min(rc.initialDelayMs * 2 ** this.retries, rc.maxDelayMs);
    const delayMs = Math.round(Math.min(base * (0.8 + Math.random() * 0.4), rc.maxDelayMs));
    this.retries++;
    this.emit('reconnecting', { attempt: this.retries, delayMs });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.state !== 'reconnecting') return;
      this.attempt().then(
        () => {
          if (this.state === 'reconnecting') this.opened(true);
        },
        (err: unknown) => {
          this.opts.logger.info({ err, attempt: this.retries }, 'reconnect attempt failed');
          this.scheduleReconnect();
        },
      );
    }, delayMs);
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    if (this.opts.heartbeatIntervalMs <= 0) return;
    this.heartbeat = setInterval(
      () => this.send(this.opts.heartbeatMessage()),
      this.opts.heartbeatIntervalMs,
    );
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  /** Emits `error` only when someone listens (an unheard `error` event would throw); always logs. */
  private raise(err: Error): void {
    this.opts.logger.warn({ err }, err.message);
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }
}
