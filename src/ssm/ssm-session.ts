/**
 * One session's SSM data channel: what outlives a socket (sequence numbers, unacknowledged output, the bridge to
 * the device). A socket attaches after presenting a token; when it drops, the state waits `resumeGraceMs` for
 * the same client (same ClientId) to come back with a fresh token, and everything unacknowledged goes again.
 *
 *   handshaking ──HandshakeResponse ok──▶ open ──bridge over──▶ closing ──acked / close wait──▶ closed
 *        └───── timeout / refused / failure / session ended / grace over ─────────────────────▶ closed
 *
 * Memory: the outgoing window is capped (`ssmOutgoingWindow`): at the cap no output is taken from the device
 * channel, whose credit then stops the device. Input waiting for device credit is capped (`streamInputMaxBytes`):
 * past it input waits in the out-of-order buffer (acked), and once that is full too it is left unacknowledged
 * and the plugin sends it again later. The out-of-order buffer is capped.
 *
 * The end: a shell (a type that ends with its stream) ends `completed` when its command exits, even if the plugin
 * drops while the last output waits for acks; it ends `failed` when the data channel fails after the shell
 * opened (plugin unresponsive, device reset), as stream sockets do.
 */
import { aipError, type AipError } from '../../protocol/index.js';
import { Fsm, type TransitionTable } from '../lib/fsm.js';
import type { Logger } from '../logger.js';
import type { LiveRemote, RemoteSessions } from '../remote/remote-sessions.js';
import type { Connection } from '../transport/connection.js';
import { asAipError, type Bridge, type BridgeHost } from './bridge.js';
import {
  ackedSequence,
  decodeClientMessage,
  encodeAck,
  encodeChannelClosed,
  encodeClientMessage,
  MessageType,
  PayloadType,
  SYN,
  type ClientMessage,
} from './codec.js';
import { handshakeCompletePayload, handshakeRequestPayload, parseHandshakeResponse } from './handshake.js';
import { Reliability, type FrameSink } from './reliability.js';
import { createBridge, handshakePlan, type SsmOptions } from './session-plan.js';

type SsmState = 'handshaking' | 'open' | 'closing' | 'closed';
const TRANSITIONS: TransitionTable<SsmState> = {
  handshaking: ['open', 'closed'],
  open: ['closing', 'closed'],
  closing: ['closed'],
  closed: [],
};

/** Invalid frames logged per session before the log goes quiet (then every 1000th). */
const LOGGED_DROPS = 20;

export interface SsmStats {
  readonly state: SsmState;
  readonly attached: boolean;
  readonly next: number;
  readonly expected: number;
  readonly unackedMessages: number;
  readonly unackedBytes: number;
  readonly bufferedMessages: number;
  readonly pendingInput: number;
  readonly rtoMs: number;
}

export class SsmSession implements BridgeHost {
  private readonly fsm = new Fsm(TRANSITIONS, 'handshaking', 'ssm data channel');
  private readonly rel: Reliability;
  private conn: Connection | null = null;
  private bridge: Bridge | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly carry: { payloadType: number; bytes: Uint8Array }[] = [];
  private resendTimer: NodeJS.Timeout | null = null;
  private graceTimer: NodeJS.Timeout | null = null;
  private closeThen: (() => void) | null = null;
  private closeOutput = '';
  private handshakeStarted = 0;
  /** The bridge opened what it needs on the device (a shell's PTY is running). */
  private bridgeStarted = false;
  private drops = 0;
  private readonly release: () => void;
  private readonly sink: FrameSink = {
    ready: () => this.conn !== null && this.conn.bufferedBytes() <= this.opts.highWaterMarkBytes,
    send: (f) => void this.conn?.send(f, true),
  };
  private readonly closer = (): void => this.fail(aipError('CHANNEL_SESSION_ENDED', { sid: this.live.id }));
  readonly inputMaxBytes: number;

  constructor(
    readonly live: LiveRemote,
    readonly remote: RemoteSessions,
    /** The plugin process this state belongs to (OpenDataChannelInput's ClientId). */
    readonly clientId: string,
    private readonly opts: SsmOptions,
    readonly log: Logger,
    private readonly gone: (s: SsmSession) => void,
  ) {
    this.inputMaxBytes = opts.inputMaxBytes;
    this.rel = new Reliability(opts);
    this.release = remote.hold(live);
    live.closers.add(this.closer);
  }

  get state(): SsmState {
    return this.fsm.state;
  }

  stats(): SsmStats {
    const u = this.rel.unacked;
    return {
      state: this.fsm.state,
      attached: this.conn !== null,
      ...this.rel.sequence,
      unackedMessages: u.messages,
      unackedBytes: u.bytes,
      bufferedMessages: this.rel.buffered.messages,
      pendingInput: this.bridge?.pendingInput ?? 0,
      rtoMs: this.rel.rto.rtoMs,
    };
  }

  /** A socket that presented a valid token: the first one starts the handshake, a later one resumes. */
  attach(conn: Connection): void {
    if (this.fsm.state === 'closed') {
      conn.send(encodeChannelClosed(this.live.id, this.closeOutput || this.endedText()), true);
      conn.close(1000, 'channel closed');
      return;
    }
    // The new socket first: closing the old one may run its close handler (and detach) synchronously.
    const old = this.conn;
    this.conn = conn;
    if (old && old !== conn) old.close(1000, 'replaced by a new connection');
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
    if (this.rel.sequence.next === 0) {
      this.handshakeStarted = Date.now();
      this.rel.enqueue((seq) =>
        this.frame(
          seq,
          PayloadType.HANDSHAKE_REQUEST,
          handshakeRequestPayload(handshakePlan(this.live, this.opts)),
        ),
      );
      this.after(this.opts.handshakeTimeoutMs, () => {
        if (this.fsm.state === 'handshaking')
          this.fail(aipError('SSM_HANDSHAKE_TIMEOUT', { ms: this.opts.handshakeTimeoutMs }));
      });
    } else {
      this.log.info({ conn: conn.id, ...this.rel.sequence }, 'data channel resumed');
      this.rel.rewind();
    }
    this.flush();
  }

  /** The socket went away: wait for the client to come back. */
  detach(conn: Connection): void {
    if (this.conn !== conn) return;
    this.conn = null;
    if (this.fsm.state === 'closed') return;
    if (this.fsm.state === 'closing') return this.dispose(aipError('CHANNEL_CANCELLED'));
    this.graceTimer = setTimeout(() => {
      const err = aipError('SSM_RESUME_EXPIRED', { ms: this.opts.resumeGraceMs });
      this.dispose(err);
      if (this.live.type.endsWithStream)
        void this.remote.end(this.live.id, 'cancelled', err.message).catch(() => undefined);
    }, this.opts.resumeGraceMs);
  }

  drained(): void {
    this.flush();
  }

  /** One frame from the attached socket. */
  message(bytes: Uint8Array): void {
    if (this.fsm.state === 'closed') return;
    if (bytes.byteLength > this.opts.maxFrameBytes) return this.dropped(`frame of ${bytes.byteLength} bytes`);
    const d = decodeClientMessage(bytes);
    if (!d.ok) return this.dropped(d.reason);
    const m = d.message;
    if (m.messageType === MessageType.ACK) {
      const seq = ackedSequence(m.payload);
      if (seq === null) return this.dropped('an acknowledge without a sequence number');
      this.rel.acknowledge(Number(seq), Date.now());
      return this.progress();
    }
    if (m.messageType !== MessageType.INPUT) return; // publication and other messages: nothing to do
    const seq = m.sequenceNumber;
    if (seq < 0n || seq > BigInt(Number.MAX_SAFE_INTEGER)) return this.dropped(`sequence number ${seq}`);
    // The plugin's first input is its handshake response (in#0); anything else there would wait for one forever
    // and the handshake end in a timeout that blames a response the client did send, later.
    if (
      this.fsm.state === 'handshaking' &&
      Number(seq) === this.rel.sequence.expected &&
      m.payloadType !== PayloadType.HANDSHAKE_RESPONSE
    )
      return this.fail(
        aipError('SSM_HANDSHAKE_REFUSED', {
          reason: `the client sent input of payload type ${m.payloadType} at sequence ${seq}, before its handshake response`,
        }),
      );
    const r = this.rel.receive(Number(seq), m, (x) => this.canTake(x));
    if (r.kind === 'refused') return;
    this.conn?.send(encodeAck(m), true);
    if (r.kind === 'deliver') for (const x of r.messages) this.deliver(x);
    else this.flush(); // kept: the scan offers it to the bridge again
  }

  private canTake(m: ClientMessage): boolean {
    if (this.fsm.state === 'handshaking') return m.payloadType === PayloadType.HANDSHAKE_RESPONSE;
    if (this.fsm.state !== 'open' || m.payloadType === PayloadType.HANDSHAKE_RESPONSE) return true;
    return this.bridge !== null && this.bridge.canTake(m);
  }

  private deliver(m: ClientMessage): void {
    if (m.payloadType === PayloadType.HANDSHAKE_RESPONSE) {
      if (this.fsm.state === 'handshaking') this.handshakeResponse(m.payload);
      return;
    }
    if (this.fsm.state === 'open') this.bridge?.take(m);
  }

  private handshakeResponse(payload: Uint8Array): void {
    const r = parseHandshakeResponse(payload);
    if (!r.ok) return this.fail(aipError('SSM_HANDSHAKE_REFUSED', { reason: r.reason }));
    this.fsm.go('open');
    this.rel.enqueue((seq) =>
      this.frame(
        seq,
        PayloadType.HANDSHAKE_COMPLETE,
        handshakeCompletePayload(Date.now() - this.handshakeStarted),
      ),
    );
    this.flush();
    const bridge = createBridge(this, this.opts);
    this.bridge = bridge;
    let started: Promise<void>;
    try {
      started = bridge.start();
    } catch (err) {
      started = Promise.reject(asAipError(err));
    }
    started.then(
      () => {
        if (this.fsm.state === 'closed') return;
        this.bridgeStarted = true;
        this.progress();
      },
      (err: unknown) => this.fail(asAipError(err)),
    );
  }

  // BridgeHost

  outputOpen(): boolean {
    return this.fsm.state === 'open' && !this.rel.windowFull && this.carry.length === 0;
  }

  output(bytes: Uint8Array, payloadType: number = PayloadType.OUTPUT): void {
    if (this.fsm.state !== 'open' || bytes.byteLength === 0) return;
    const size = this.opts.chunkBytes;
    for (let off = 0; off < bytes.byteLength; off += size)
      this.carry.push({ payloadType, bytes: bytes.slice(off, off + size) });
    this.numberCarried();
    this.flush();
  }

  /** Output beyond the window waits here (at most what one take from the device gave) until acks make room. */
  private numberCarried(): void {
    let n = 0;
    while (n < this.carry.length && !this.rel.windowFull) {
      const { payloadType, bytes } = this.carry[n++]!;
      this.rel.enqueue((seq) => this.frame(seq, payloadType, bytes));
    }
    if (n > 0) this.carry.splice(0, n);
  }

  finish(output: string, then?: () => void): void {
    if (this.fsm.state !== 'open') return;
    this.fsm.go('closing');
    this.closeOutput = output;
    this.closeThen = then ?? null;
    this.after(this.opts.closeWaitMs, () => this.closeNow());
    this.progress();
  }

  fail(err: AipError): void {
    if (this.fsm.state === 'closed') return;
    this.log.info({ err: err.message }, 'data channel closed');
    this.closeOutput = err.message;
    // A shell that exited keeps its `completed` end; one torn down while running ends failed.
    if (
      this.closeThen === null &&
      this.bridgeStarted &&
      this.live.type.endsWithStream &&
      err.kind !== 'CHANNEL_SESSION_ENDED'
    )
      this.closeThen = () => void this.remote.end(this.live.id, 'failed', err.message).catch(() => undefined);
    this.closeNow(err);
  }

  inputRoom(): void {
    if (this.fsm.state === 'closed') return;
    if (this.rel.buffered.messages > 0) this.progress();
  }

  terminate(): void {
    const err = aipError('SSM_TERMINATED');
    this.conn?.close(1000, 'terminated');
    this.dispose(err);
    void this.remote.end(this.live.id, 'cancelled', err.message).catch(() => undefined);
  }

  // internals

  private frame(seq: number, payloadType: number, payload: Uint8Array): Uint8Array {
    return encodeClientMessage({
      messageType: MessageType.OUTPUT,
      sequenceNumber: BigInt(seq),
      flags: seq === 0 ? SYN : 0n,
      payloadType,
      payload,
    });
  }

  /** Puts waiting output on the wire, and starts the scan if it has work. */
  private flush(): void {
    this.rel.flush(this.sink, Date.now());
    if (this.resendTimer === null && this.scanHasWork())
      this.resendTimer = setInterval(() => this.tick(), this.opts.resendIntervalMs);
  }

  /** The scan runs while sent output waits for its ack, or kept input waits for the bridge; an idle session has none. */
  private scanHasWork(): boolean {
    if (this.conn === null || this.fsm.state === 'closed') return false;
    return this.rel.awaitingAcks || this.rel.buffered.messages > 0;
  }

  private stopResends(): void {
    if (this.resendTimer) clearInterval(this.resendTimer);
    this.resendTimer = null;
  }

  /** Acks arrived or the socket drained: send what waits, take more output, and see whether closing is done. */
  private progress(): void {
    for (const m of this.rel.ready((x) => this.canTake(x))) this.deliver(m);
    if (this.fsm.state === 'open' || this.fsm.state === 'closing') this.numberCarried();
    this.flush();
    this.bridge?.pump();
    if (this.fsm.state === 'closing' && this.rel.unacked.messages === 0 && this.carry.length === 0)
      this.closeNow();
  }

  private tick(): void {
    if (!this.scanHasWork()) return this.stopResends();
    const stuck = this.rel.resendDue(this.sink, Date.now());
    if (stuck !== null)
      return this.fail(
        aipError('SSM_CLIENT_UNRESPONSIVE', { seq: stuck, attempts: this.opts.maxResendAttempts }),
      );
    this.progress();
  }

  private closeNow(err?: AipError): void {
    if (this.fsm.state === 'closed') return;
    const conn = this.conn;
    conn?.send(encodeChannelClosed(this.live.id, this.closeOutput), true);
    this.dispose(err ?? aipError('CHANNEL_SESSION_ENDED', { sid: this.live.id }));
    conn?.close(1000, 'channel closed');
  }

  /** Closed for good: timers stop, the bridge resets, and what the end was to do (`closeThen`) runs. */
  private dispose(err: AipError): void {
    if (this.fsm.state === 'closed') return;
    this.fsm.go('closed');
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.stopResends();
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
    this.bridge?.close(err);
    this.live.closers.delete(this.closer);
    this.release();
    this.gone(this);
    const then = this.closeThen;
    this.closeThen = null;
    then?.();
  }

  private endedText(): string {
    return aipError('CHANNEL_SESSION_ENDED', { sid: this.live.id }).message;
  }

  private after(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private dropped(reason: string): void {
    this.drops++;
    if (this.drops <= LOGGED_DROPS || this.drops % 1000 === 0)
      this.log.warn({ reason, dropped: this.drops }, 'invalid data-channel frame dropped');
  }
}
