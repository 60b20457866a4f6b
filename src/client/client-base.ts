/**
 * What the device and controller clients share: the connection, events, task requests with their ACKs, and
 * `task_end` waiters.
 *
 * When the connection drops, pending requests (ACKs, device info) are rejected: their replies cannot come. `task_end`
 * waiters are kept while the client reconnects: a server that restarted resumes the task (`--resume auto`) and sends
 * its `task_end` once this client registers again with the same `clientId`. Each kept waiter is rejected if its
 * `task_end` has not come within `resumeWaitMs` of the drop (a server that stayed up cancels a task whose requester
 * left, and tells nobody), and at once when the client is closed or gives up reconnecting.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { pino, type Logger } from 'pino';
import {
  jsonCodec,
  msgpackCodec,
  type ClientMessageInput,
  type ClientType,
  type ServerMessage,
} from '../../protocol/index.js';
import {
  AipConnection,
  type BinaryFrameHandler,
  type ConnectionEvents,
  type ReconnectOptions,
} from './connection.js';
import { DEFAULT_RESUME_CHECK_MS, EndedCheck } from './ended-check.js';
import { RequestQueue, TaskEndWaiters } from './pending.js';

export interface BaseClientOptions {
  /** Server WebSocket URL, e.g. ws://127.0.0.1:5000/ws. */
  url: string;
  /** The server API key, sent as the `token` query parameter. */
  token: string;
  clientId: string;
  /** `msgpack` offers the subprotocol `aip.msgpack.v1` and sends binary frames; default `json` (UFO mode). */
  codec?: 'json' | 'msgpack';
  /** Reconnect after a registered connection drops; default on (500 ms ×2 up to 10 s, 10 retries). */
  reconnect?: ReconnectOptions | false;
  /** Periodic C→S `heartbeat` frames; 0 (default) turns them off. */
  heartbeatIntervalMs?: number;
  /** How long a task ACK or device-info reply may take; default 30 s. */
  requestTimeoutMs?: number;
  /**
   * How long a `task_end` waiter outlives a dropped connection that reconnects, counted from the drop until its
   * `task_end` arrives; default 10 min (`DEFAULT_RESUME_WAIT_MS`). 0 rejects the waiters at the drop.
   */
  resumeWaitMs?: number;
  /**
   * After a reconnect, how often the records of the tasks still waited for across the drop are read
   * (`GET /sessions/{id}`): a task the server ended while this client was away is then settled from its record
   * instead of waiting out `resumeWaitMs` (ended-check.ts). Read at once on registering, then at this interval;
   * default 5 s (`DEFAULT_RESUME_CHECK_MS`); 0 never reads them.
   */
  resumeCheckMs?: number;
  logger?: Logger;
}

export interface TaskRequest {
  request: string;
  taskName?: string | null;
  sessionId?: string | null;
}

export interface TaskAck {
  sessionId: string;
}

/** Events of both clients: the connection's events (`frame`, `registered`, `disconnected`, `reconnecting`, `error`). */
export type ClientEvents = ConnectionEvents;

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Default of `resumeWaitMs`: how long a `task_end` waiter outlives a dropped connection. */
export const DEFAULT_RESUME_WAIT_MS = 600_000;

const silentLogger: Logger = pino({ enabled: false });

export abstract class AipClientBase extends EventEmitter<ClientEvents> {
  readonly clientId: string;
  protected readonly conn: AipConnection;
  protected readonly log: Logger;
  protected readonly requests = new RequestQueue();
  protected readonly taskEnds = new TaskEndWaiters();
  protected readonly requestTimeoutMs: number;
  readonly resumeWaitMs: number;
  private readonly endedCheck: EndedCheck;

  protected constructor(opts: BaseClientOptions, clientType: ClientType) {
    super();
    this.clientId = opts.clientId;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.resumeWaitMs = opts.resumeWaitMs ?? DEFAULT_RESUME_WAIT_MS;
    this.log = (opts.logger ?? silentLogger).child({
      component: 'aip-client',
      clientId: opts.clientId,
      clientType,
    });
    this.conn = new AipConnection({
      url: opts.url,
      token: opts.token,
      codec: opts.codec === 'msgpack' ? msgpackCodec : jsonCodec,
      reconnect: opts.reconnect ?? {},
      heartbeatIntervalMs: opts.heartbeatIntervalMs ?? 0,
      logger: this.log,
      registerMessage: () => this.registerMessage(),
      heartbeatMessage: () => ({
        type: 'heartbeat',
        status: 'ok',
        client_type: clientType,
        client_id: this.clientId,
        timestamp: new Date().toISOString(),
      }),
    });
    this.endedCheck = new EndedCheck({
      url: opts.url,
      token: opts.token,
      everyMs: opts.resumeCheckMs ?? DEFAULT_RESUME_CHECK_MS,
      timeoutMs: this.requestTimeoutMs,
      waiters: this.taskEnds,
      isOpen: () => this.conn.isOpen,
      log: this.log,
    });
    this.conn.on('frame', (msg) => this.onFrame(msg));
    this.conn.on('registered', (info) => {
      this.taskEnds.attach();
      this.emit('registered', info);
      if (info.reconnected) this.endedCheck.start();
    });
    this.conn.on('reconnecting', (info) => this.emit('reconnecting', info));
    this.conn.on('error', (err) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    this.conn.on('disconnected', (info) => {
      const why = info.willReconnect ? 'reconnecting' : 'closed';
      const err = new Error(
        `Connection lost (code ${info.code}${info.reason ? `: ${info.reason}` : ''}; ${why})`,
      );
      this.requests.rejectAll(err);
      this.endedCheck.stop();
      if (info.willReconnect && this.resumeWaitMs > 0)
        this.taskEnds.detach(this.resumeWaitMs, `code ${info.code}${info.reason ? `: ${info.reason}` : ''}`);
      else this.taskEnds.rejectAll(err);
      this.emit('disconnected', info);
    });
  }

  /** Resolves once registered; rejects with the server's error text (or the socket error) otherwise. */
  connect(): Promise<void> {
    return this.conn.connect();
  }

  /** Closes the connection and stops reconnecting; pending waiters are rejected. */
  async close(): Promise<void> {
    const err = new Error('Client closed');
    this.endedCheck.stop();
    this.requests.rejectAll(err);
    this.taskEnds.rejectAll(err);
    await this.conn.close();
  }

  /** True while registered on an open socket. */
  get connected(): boolean {
    return this.conn.isOpen;
  }

  /** Sends one pre-encoded binary frame on the registered socket (for data channels); false when not connected. */
  sendBinaryFrame(frame: Uint8Array): boolean {
    return this.conn.sendBinary(frame);
  }

  /**
   * Lets a handler see every binary frame before AIP decoding; when it returns true the frame is consumed
   * (no `frame` or `error` event). For the data-channel mux: feed it frames where `isChannelFrame` holds.
   */
  setBinaryFrameHandler(handler: BinaryFrameHandler | null): void {
    this.conn.setBinaryFrameHandler(handler);
  }

  /**
   * Resolves with the `task_end` frame of `sessionId` (also one that arrived before this call). While the client
   * reconnects it waits too, within `resumeWaitMs` of the drop; `timeoutMs` bounds the whole wait (default none).
   */
  waitTaskEnd(sessionId: string, timeoutMs?: number): Promise<ServerMessage> {
    const reconnecting = this.conn.reconnecting && this.resumeWaitMs > 0;
    if (!this.conn.isOpen && !reconnecting && !this.taskEnds.hasUnclaimed(sessionId))
      return Promise.reject(new Error(`Not connected; cannot wait for task_end of session ${sessionId}`));
    return this.taskEnds.wait(sessionId, timeoutMs);
  }

  protected abstract registerMessage(): ClientMessageInput;

  /** Handles a frame the base did not consume (commands, pushed tasks). Default: nothing. */
  protected handleFrame(_msg: ServerMessage): void {}

  /** Sends or throws when there is no registered socket. */
  protected sendOrThrow(msg: ClientMessageInput): void {
    if (!this.conn.send(msg)) throw new Error(`Not connected; cannot send ${msg.type}`);
  }

  /** Sends a `task` and resolves with the ACK's session id; rejects on an `error` reply. */
  protected sendTask(msg: ClientMessageInput): Promise<TaskAck> {
    if (!this.conn.isOpen) return Promise.reject(new Error(`Not connected; cannot send ${msg.type}`));
    const wanted = msg.session_id ?? null;
    const ack = this.requests.wait<TaskAck>(
      {
        what: `task ACK${wanted ? ` for session ${wanted}` : ''}`,
        match: (m) =>
          m.type === 'heartbeat' &&
          m.status === 'ok' &&
          m.session_id !== null &&
          (wanted === null || m.session_id === wanted)
            ? { sessionId: m.session_id }
            : undefined,
      },
      this.requestTimeoutMs,
    );
    // The socket was open just above; if it closes in between, the disconnect rejects the waiter.
    this.conn.send({ request_id: randomUUID(), timestamp: new Date().toISOString(), ...msg });
    return ack;
  }

  private onFrame(msg: ServerMessage): void {
    if (msg.type === 'task_end') this.taskEnds.offer(msg);
    else if (msg.type === 'heartbeat' || msg.type === 'error' || msg.type === 'device_info_response')
      this.requests.offer(msg);
    try {
      this.handleFrame(msg);
    } catch (err) {
      this.log.error({ err }, 'frame handler failed');
    }
    this.emit('frame', msg);
  }
}
