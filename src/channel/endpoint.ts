/**
 * One end of a data channel: a transport-agnostic state machine with sequence numbers, cumulative acks and a
 * credit window per direction.
 *
 * - Writer: `write(bytes)` resolves once every byte is on the wire. A byte goes out only while
 *   `sentBytes - ackedBytes` (in flight) stays ≤ the peer's advertised window, so a slow reader stalls the writer
 *   instead of growing any buffer. Large writes are cut into DATA frames of at most `maxChunk` bytes.
 * - Reader: DATA is queued (at most `receiveWindow` bytes: more is a protocol violation → RESET) until the
 *   consumer `take()`s it; consuming returns credit with a cumulative ACK once a quarter window is consumed or
 *   the queue is drained.
 * - States: opening → open → half-closed-local / half-closed-remote → closed; any state → reset.
 */
import { AipError, Errors, aipError, type ErrorName } from '../../protocol/index.js';
import {
  ChannelOp,
  encodeAccept,
  encodeAck,
  encodeData,
  encodeFin,
  encodeOpen,
  encodeReject,
  encodeReset,
  type ChannelFrame,
  type OpenBody,
} from '../../protocol/channel.js';
import { Fsm, type TransitionTable } from '../lib/fsm.js';

export type ChannelState =
  'opening' | 'open' | 'half-closed-local' | 'half-closed-remote' | 'closed' | 'reset';

/** The endpoint's transitions (same table style as the session's). A closed channel can still be reset locally. */
export const CHANNEL_TRANSITIONS: TransitionTable<ChannelState> = {
  opening: ['open', 'reset'],
  open: ['half-closed-local', 'half-closed-remote', 'reset'],
  'half-closed-local': ['closed', 'reset'],
  'half-closed-remote': ['closed', 'reset'],
  closed: ['reset'],
  reset: [],
};

export const DEFAULT_RECEIVE_WINDOW = 256 * 1024;
export const DEFAULT_MAX_CHUNK = 64 * 1024;

export interface EndpointOptions {
  readonly channel: number;
  /** Puts one encoded frame on the wire. Returns false when the transport is gone. */
  readonly send: (frame: Uint8Array) => boolean;
  readonly receiveWindow?: number;
  readonly maxChunk?: number;
  /** 'opening' for the opener (waits for ACCEPT), 'open' for the acceptor (knows the window from OPEN). */
  readonly initialState?: 'opening' | 'open';
  /** The peer's receive window, when known (acceptor: from OPEN). */
  readonly sendWindow?: number;
}

interface PendingWrite {
  readonly data: Uint8Array | null; // null = FIN
  readonly trailer: Record<string, unknown> | null;
  off: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

type Listener = () => void;

/** An AipError from a wire code (REJECT/RESET); unknown codes keep their number under CHANNEL_REJECTED. */
export function errorFromCode(code: number, reason: string): AipError {
  for (const [name, s] of Object.entries(Errors))
    if (s.code === code) return new AipError(name as ErrorName, code, reason);
  return new AipError('CHANNEL_REJECTED', code, reason);
}

export class ChannelEndpoint {
  readonly channel: number;
  readonly receiveWindow: number;
  readonly maxChunk: number;
  private readonly fsm: Fsm<ChannelState>;
  private _error: AipError | null = null;
  private readonly sendFrame: (frame: Uint8Array) => boolean;
  // writer side
  private sendWindow: number;
  private sendSeq = 0;
  private sentBytes = 0;
  private ackedBytes = 0;
  private maxInFlightSeen = 0;
  private readonly writes: PendingWrite[] = [];
  private pumping = false;
  private finQueued = false;
  // reader side
  private readonly queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private recvSeq = 0;
  private recvBytes = 0;
  private consumedSeq = 0;
  private consumedBytes = 0;
  private advertisedConsumed = 0;
  private advertisedWindow: number;
  private remoteFin = false;
  private _trailer: Record<string, unknown> | null = null;
  private readonly readableListeners: Listener[] = [];
  private readonly stateListeners: Listener[] = [];
  private openWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(opts: EndpointOptions) {
    this.channel = opts.channel;
    this.sendFrame = opts.send;
    this.receiveWindow = opts.receiveWindow ?? DEFAULT_RECEIVE_WINDOW;
    this.advertisedWindow = this.receiveWindow;
    this.maxChunk = Math.max(1, opts.maxChunk ?? DEFAULT_MAX_CHUNK);
    this.fsm = new Fsm(CHANNEL_TRANSITIONS, opts.initialState ?? 'opening', 'channel');
    this.sendWindow = opts.sendWindow ?? 0;
  }

  get state(): ChannelState {
    return this.fsm.state;
  }
  /** Why the channel was reset or rejected, if it was. */
  get error(): AipError | null {
    return this._error;
  }
  /** The JSON trailer the peer sent with its FIN (e.g. `{exit_code}` from a stream), once received. */
  get trailer(): Record<string, unknown> | null {
    return this._trailer;
  }
  /** True once the channel can no longer carry anything (both FINs seen, or reset). */
  get finished(): boolean {
    return this.fsm.state === 'closed' || this.fsm.state === 'reset';
  }
  stats(): {
    inFlight: number;
    maxInFlight: number;
    sendWindow: number;
    queuedBytes: number;
    pendingWrites: number;
    /** Payload bytes written and received over the channel's life. */
    sentBytes: number;
    receivedBytes: number;
  } {
    return {
      sentBytes: this.sentBytes,
      receivedBytes: this.recvBytes,
      inFlight: this.sentBytes - this.ackedBytes,
      maxInFlight: this.maxInFlightSeen,
      sendWindow: this.sendWindow,
      queuedBytes: this.queuedBytes,
      pendingWrites: this.writes.length,
    };
  }

  onReadable(l: Listener): void {
    this.readableListeners.push(l);
  }
  onStateChange(l: Listener): void {
    this.stateListeners.push(l);
  }

  /** Opener: sends OPEN advertising this end's receive window. */
  sendOpen(body: OpenBody): void {
    this.emit(encodeOpen(this.channel, this.receiveWindow, body));
  }
  /** Acceptor: sends ACCEPT advertising this end's receive window. */
  accept(): void {
    this.emit(encodeAccept(this.channel, this.receiveWindow));
  }
  /** Acceptor: refuses the OPEN. */
  reject(err: AipError): void {
    this.emit(encodeReject(this.channel, err.code, err.message));
    this.toReset(err);
  }
  /** Resolves when ACCEPT arrives; rejects with the REJECT/RESET error. */
  opened(): Promise<void> {
    if (this.fsm.state === 'opening')
      return new Promise((resolve, reject) => this.openWaiters.push({ resolve, reject }));
    return this.fsm.state === 'reset'
      ? Promise.reject(this._error ?? aipError('CHANNEL_CANCELLED'))
      : Promise.resolve();
  }

  /** Queues bytes; resolves when all of them are sent (credit permitting). Rejects if the channel resets. */
  write(bytes: Uint8Array): Promise<void> {
    if (this.fsm.state === 'reset') return Promise.reject(this._error ?? aipError('CHANNEL_CANCELLED'));
    if (this.finQueued || this.fsm.state === 'half-closed-local' || this.fsm.state === 'closed')
      return Promise.reject(
        aipError('CHANNEL_PROTOCOL', { channel: this.channel, detail: 'write after end' }),
      );
    if (bytes.byteLength === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.writes.push({ data: bytes, trailer: null, off: 0, resolve, reject });
      this.pump();
    });
  }

  /** Half-closes the writing direction after all queued data: sends FIN (with an optional JSON trailer). */
  end(trailer: Record<string, unknown> | null = null): Promise<void> {
    if (this.fsm.state === 'reset') return Promise.reject(this._error ?? aipError('CHANNEL_CANCELLED'));
    if (this.finQueued) return Promise.resolve();
    this.finQueued = true;
    return new Promise((resolve, reject) => {
      this.writes.push({ data: null, trailer, off: 0, resolve, reject });
      this.pump();
    });
  }

  /** Aborts the channel: sends RESET with the reason and fails pending reads and writes. */
  reset(err: AipError = aipError('CHANNEL_CANCELLED')): void {
    if (this.finished) return;
    this.emit(encodeReset(this.channel, err.code, err.message));
    this.toReset(err);
  }

  /** The transport went away (or the router reset us): fail locally, send nothing. */
  abort(err: AipError): void {
    if (!this.finished) this.toReset(err);
  }

  /** Next received chunk: bytes, `null` at end of stream, `undefined` if nothing is available yet. Throws after reset. */
  take(): Uint8Array | null | undefined {
    const chunk = this.queue.shift();
    if (chunk === undefined) {
      if (this.fsm.state === 'reset') throw this._error ?? aipError('CHANNEL_CANCELLED');
      return this.remoteFin ? null : undefined;
    }
    this.queuedBytes -= chunk.byteLength;
    this.consumedBytes += chunk.byteLength;
    this.consumedSeq = (this.consumedSeq + 1) >>> 0;
    this.maybeAck();
    return chunk;
  }

  /** Promise form of `take`: the next chunk, or null at end of stream. */
  read(): Promise<Uint8Array | null> {
    return new Promise((resolve, reject) => {
      const attempt = (): boolean => {
        try {
          const c = this.take();
          if (c === undefined) return false;
          resolve(c);
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
        return true;
      };
      if (attempt()) return;
      const l = (): void => {
        if (attempt()) this.readableListeners.splice(this.readableListeners.indexOf(l), 1);
      };
      this.readableListeners.push(l);
    });
  }

  /** Feeds one decoded frame addressed to this channel. Protocol violations reset the channel. */
  handleFrame(f: ChannelFrame): void {
    if (this.fsm.state === 'reset') return;
    switch (f.op) {
      case ChannelOp.ACCEPT:
        if (this.fsm.state !== 'opening') return this.violation('unexpected ACCEPT');
        this.sendWindow = f.window;
        this.setState('open');
        for (const w of this.openWaiters) w.resolve();
        this.openWaiters = [];
        return this.pump();
      case ChannelOp.REJECT:
        if (this.fsm.state !== 'opening') return this.violation('unexpected REJECT');
        return this.toReset(errorFromCode(f.code, f.reason));
      case ChannelOp.RESET:
        return this.toReset(errorFromCode(f.code, f.reason));
      case ChannelOp.DATA:
        return this.onData(f.seq, f.payload);
      case ChannelOp.ACK:
        return this.onAck(f.consumed, f.window);
      case ChannelOp.FIN:
        return this.onFin(f.seq, f.trailer);
      case ChannelOp.OPEN:
        return this.violation('OPEN on an existing channel');
    }
  }

  private onData(seq: number, payload: Uint8Array): void {
    if (this.fsm.state === 'opening' || this.remoteFin) return this.violation('DATA outside the open state');
    if (payload.byteLength === 0) return this.violation('empty DATA');
    if (seq !== this.recvSeq) return this.violation(`DATA seq ${seq}, expected ${this.recvSeq}`);
    const inFlight = this.recvBytes + payload.byteLength - this.advertisedConsumed;
    if (inFlight > this.advertisedWindow) {
      return this.fail(
        aipError('CHANNEL_WINDOW_EXCEEDED', {
          channel: this.channel,
          inFlight,
          window: this.advertisedWindow,
        }),
      );
    }
    this.recvSeq = (this.recvSeq + 1) >>> 0;
    this.recvBytes += payload.byteLength;
    this.queue.push(payload.slice()); // own the bytes: transports may reuse their receive buffer
    this.queuedBytes += payload.byteLength;
    this.notify(this.readableListeners);
  }

  private onAck(consumed: number, window: number): void {
    if (this.fsm.state === 'opening') return this.violation('ACK before ACCEPT');
    if (consumed < this.ackedBytes || consumed > this.sentBytes)
      return this.violation(`ACK of ${consumed} bytes out of range`);
    this.ackedBytes = consumed;
    this.sendWindow = window;
    this.pump();
  }

  private onFin(seq: number, trailer: Record<string, unknown> | null): void {
    if (this.fsm.state === 'opening' || this.remoteFin) return this.violation('unexpected FIN');
    if (seq !== this.recvSeq) return this.violation(`FIN after ${seq} frames, received ${this.recvSeq}`);
    this.remoteFin = true;
    this._trailer = trailer;
    this.setState(this.fsm.state === 'half-closed-local' ? 'closed' : 'half-closed-remote');
    this.notify(this.readableListeners);
  }

  private maybeAck(): void {
    if (this.remoteFin || this.fsm.state === 'reset') return;
    const unacked = this.consumedBytes - this.advertisedConsumed;
    if (unacked === 0) return;
    // Ack every quarter window, and whenever the consumer has drained the queue: a router may have clamped the
    // window the writer sees below ours, so the writer can stall with less than a quarter of our window sent.
    if (unacked < Math.max(1, Math.floor(this.receiveWindow / 4)) && this.queue.length > 0) return;
    this.advertisedConsumed = this.consumedBytes;
    this.advertisedWindow = this.receiveWindow;
    this.emit(encodeAck(this.channel, this.consumedSeq, this.consumedBytes, this.receiveWindow));
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (
        this.writes.length > 0 &&
        (this.fsm.state === 'open' || this.fsm.state === 'half-closed-remote')
      ) {
        const w = this.writes[0]!;
        if (w.data === null) {
          this.writes.shift();
          this.emit(encodeFin(this.channel, this.sendSeq, w.trailer));
          this.setState(this.fsm.state === 'half-closed-remote' ? 'closed' : 'half-closed-local');
          w.resolve();
          continue;
        }
        const avail = this.sendWindow - (this.sentBytes - this.ackedBytes);
        if (avail <= 0) break;
        const n = Math.min(avail, this.maxChunk, w.data.byteLength - w.off);
        const frame = encodeData(this.channel, this.sendSeq, w.data.subarray(w.off, w.off + n));
        this.sendSeq = (this.sendSeq + 1) >>> 0;
        this.sentBytes += n;
        this.maxInFlightSeen = Math.max(this.maxInFlightSeen, this.sentBytes - this.ackedBytes);
        w.off += n;
        if (w.off === w.data.byteLength) {
          this.writes.shift();
          w.resolve();
        }
        if (!this.emit(frame)) break;
      }
    } finally {
      this.pumping = false;
    }
  }

  private emit(frame: Uint8Array): boolean {
    if (this.sendFrame(frame)) return true;
    this.toReset(aipError('CHANNEL_PEER_GONE'));
    return false;
  }

  private violation(detail: string): void {
    this.fail(aipError('CHANNEL_PROTOCOL', { channel: this.channel, detail }));
  }
  private fail(err: AipError): void {
    this.reset(err);
  }

  private toReset(err: AipError): void {
    if (this.fsm.state === 'reset') return;
    this._error = err;
    this.queue.length = 0;
    this.queuedBytes = 0;
    const pending = this.writes.splice(0);
    for (const w of pending) w.reject(err);
    for (const w of this.openWaiters) w.reject(err);
    this.openWaiters = [];
    this.setState('reset');
    this.notify(this.readableListeners);
  }

  private setState(s: ChannelState): void {
    if (this.fsm.state === s) return;
    this.fsm.go(s);
    this.notify(this.stateListeners);
  }

  private notify(ls: Listener[]): void {
    for (const l of ls.slice()) l();
  }
}
