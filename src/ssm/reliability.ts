/**
 * The data channel's reliability layer, the server's half (docs/ssm.md): what SSM's agent does, with bounded
 * buffers. Pure state: the caller owns the socket and the timers and passes the time in.
 *
 * Outgoing: every sequenced message gets the next number (from 0, surviving reconnects) and stays in the window
 * until the plugin acknowledges that number (selective acks: any entry may go). The window is capped
 * (`outgoingWindow` messages); the caller stops producing while it is full. Messages are put on the wire in order
 * while the socket keeps up (`flush`); the oldest unacknowledged message, once its last send is older than the
 * RTO, is sent again (`resendDue`: one message per scan, as SSM's agent does) up to `maxResendAttempts`.
 *
 * Incoming: the message with the expected number is delivered if the caller can take it now; later numbers, and
 * the expected one while the caller cannot take it (the device has no credit yet), wait in a bounded buffer (acked
 * on arrival; dropped unacked when the buffer is full, so the plugin sends them again) and are delivered in order
 * by `ready()` as soon as the gap closes and the caller can take them. Earlier numbers are duplicates: never
 * delivered again.
 */
import type { ClientMessage } from './codec.js';
import { RtoEstimator } from './rto.js';

export interface ReliabilityLimits {
  /** Unacknowledged output messages kept (sent or waiting to be sent). */
  readonly outgoingWindow: number;
  /** Out-of-order input messages kept, and their payload bytes. */
  readonly incomingBufferMessages: number;
  readonly incomingBufferBytes: number;
  /** Sends of one message before the plugin counts as unresponsive. */
  readonly maxResendAttempts: number;
  /**
   * After a resume: how long output sent again on the new socket may wait for its ack before it counts as output
   * the plugin already had (it never acknowledges a duplicate; what it lacked it acknowledges on arrival).
   */
  readonly resumeAckWaitMs: number;
}

/** Where frames go: `ready()` is false while the socket is gone or over its high-water mark. */
export interface FrameSink {
  ready(): boolean;
  send(frame: Uint8Array): void;
}

interface Outgoing {
  readonly seq: number;
  readonly frame: Uint8Array;
  /** When it last went on the wire, or null while it waits to (first send, or resend after a reconnect). */
  sentAt: number | null;
  attempts: number;
  /** Sent again on a new socket: the plugin may have had it already (its ack lost with the old socket). */
  rewound: boolean;
  /**
   * Rewound and unacknowledged past `resumeAckWaitMs`: most likely a duplicate the plugin never acknowledges. Kept
   * (a later socket sends it again) but no longer resent and not counted in the window; it goes once a later
   * message is acknowledged, which the plugin can only have after it.
   */
  parked: boolean;
}

export type Receipt =
  /** Deliver these in order (the received message first); ack it. */
  | { readonly kind: 'deliver'; readonly messages: readonly ClientMessage[] }
  /** Kept for later; ack it. */
  | { readonly kind: 'buffered' }
  /** Seen before: not delivered again (acking it again is harmless). */
  | { readonly kind: 'duplicate' }
  /** Not kept (the buffer is full): no ack, the plugin sends it again. */
  | { readonly kind: 'refused'; readonly why: 'not-ready' | 'buffer-full' };

export class Reliability {
  readonly rto = new RtoEstimator();
  private nextSeq = 0;
  private expectedSeq = 0;
  private readonly outgoing = new Map<number, Outgoing>();
  private readonly incoming = new Map<number, ClientMessage>();
  private incomingBytes = 0;
  private highestAcked = -1;
  private parkedCount = 0;

  constructor(private readonly limits: ReliabilityLimits) {}

  /** The next number this side will send, and the next it will deliver. */
  get sequence(): { next: number; expected: number } {
    return { next: this.nextSeq, expected: this.expectedSeq };
  }

  /** Unacknowledged output messages, and their bytes. */
  get unacked(): { messages: number; bytes: number } {
    let bytes = 0;
    for (const o of this.outgoing.values()) bytes += o.frame.byteLength;
    return { messages: this.outgoing.size, bytes };
  }

  get buffered(): { messages: number; bytes: number } {
    return { messages: this.incoming.size, bytes: this.incomingBytes };
  }

  /** True when no more output may be produced until acks arrive. */
  get windowFull(): boolean {
    return this.outgoing.size - this.parkedCount >= this.limits.outgoingWindow;
  }

  /** Numbers a message: `build(seq)` gives its frame. It waits in the window until acked. */
  enqueue(build: (seq: number) => Uint8Array): number {
    const seq = this.nextSeq++;
    this.outgoing.set(seq, {
      seq,
      frame: build(seq),
      sentAt: null,
      attempts: 0,
      rewound: false,
      parked: false,
    });
    return seq;
  }

  /** Puts waiting messages on the wire, in order, while the sink is ready. */
  flush(sink: FrameSink, now: number): void {
    for (const o of this.outgoing.values()) {
      if (o.sentAt !== null) continue;
      if (!sink.ready()) return;
      o.sentAt = now;
      o.attempts++;
      sink.send(o.frame);
    }
  }

  /** A new socket: everything unacknowledged goes again (in order, by the next flush). */
  rewind(): void {
    for (const o of this.outgoing.values()) {
      if (o.sentAt !== null) o.rewound = true;
      o.sentAt = null;
      o.parked = false;
    }
    this.parkedCount = 0;
  }

  /**
   * Sends the oldest unacknowledged message again once it waited longer than the RTO for its ack (one per scan:
   * the plugin acks everything it gets, so only a lost message needs this, and the rest follow as the head is
   * acked). Returns the number of a message that reached `maxResendAttempts` while nothing after it was
   * acknowledged (the plugin is not listening), else null. A message at the cap that was probably delivered
   * with its ack lost (a later one was acked) is dropped instead: the plugin never acks a duplicate again. Messages
   * sent again on a new socket after a resume are not resent: unacked after `resumeAckWaitMs`, they are parked.
   */
  resendDue(sink: FrameSink, now: number): number | null {
    for (const o of this.outgoing.values()) {
      if (o.sentAt === null) return null;
      if (o.rewound) {
        // Sent again on the new socket, which delivers in order, so never resent on it: the plugin acknowledges
        // at once what it lacked. Unacknowledged past the wait, it is parked (see `parked`), all such messages
        // together, so that duplicates do not hold the window for minutes after a resume.
        if (this.highestAcked > o.seq) {
          // a later message was acknowledged: this one, before it on the same socket, arrived
          this.outgoing.delete(o.seq);
          if (o.parked) this.parkedCount--;
          continue;
        }
        if (o.parked) continue;
        if (now - o.sentAt < this.limits.resumeAckWaitMs) return null;
        o.parked = true;
        this.parkedCount++;
        continue;
      }
      if (now - o.sentAt < this.rto.rtoMs) return null;
      if (o.attempts >= this.limits.maxResendAttempts) {
        if (this.highestAcked > o.seq) {
          this.outgoing.delete(o.seq);
          continue;
        }
        return o.seq;
      }
      if (!sink.ready()) return null;
      o.sentAt = now;
      o.attempts++;
      sink.send(o.frame);
      return null;
    }
    return null;
  }

  /** The plugin acknowledged `seq`: it leaves the window (an RTT sample if it was sent once). */
  acknowledge(seq: number, now: number): boolean {
    const o = this.outgoing.get(seq);
    if (!o) return false;
    this.outgoing.delete(seq);
    if (o.parked) this.parkedCount--;
    if (seq > this.highestAcked) this.highestAcked = seq;
    // Messages sent again after a resume and before it arrived before it (one socket delivers in order): they go.
    // (In the steady state the window's head is past `seq`, and this stops at once.)
    for (const p of this.outgoing.values()) {
      if (p.seq > seq) break;
      if (!p.rewound) continue;
      this.outgoing.delete(p.seq);
      if (p.parked) this.parkedCount--;
    }
    if (o.attempts === 1 && o.sentAt !== null) this.rto.sample(now - o.sentAt);
    return true;
  }

  /** Whether any sent message is waiting for its ack (the resend scan has work). */
  get awaitingAcks(): boolean {
    for (const o of this.outgoing.values()) if (o.sentAt !== null && !o.parked) return true;
    return false;
  }

  /** An input message numbered `seq`; `canTake` says whether the caller can take it now (head of line only). */
  receive(seq: number, m: ClientMessage, canTake: (m: ClientMessage) => boolean): Receipt {
    if (seq < this.expectedSeq || this.incoming.has(seq)) return { kind: 'duplicate' };
    if (seq === this.expectedSeq && canTake(m)) {
      this.expectedSeq++;
      return { kind: 'deliver', messages: [m, ...this.ready(canTake)] };
    }
    // A later number, or the expected one while the caller cannot take it: kept (and acked) while there is room,
    // and delivered by `ready()` once the caller can take it.
    if (
      this.incoming.size >= this.limits.incomingBufferMessages ||
      this.incomingBytes + m.payload.byteLength > this.limits.incomingBufferBytes
    )
      return { kind: 'refused', why: seq === this.expectedSeq ? 'not-ready' : 'buffer-full' };
    const kept = { ...m, payload: m.payload.slice() };
    this.incoming.set(seq, kept);
    this.incomingBytes += kept.payload.byteLength;
    return { kind: 'buffered' };
  }

  /** Kept messages from the expected number on, in order, as long as the caller can take them. */
  ready(canTake: (m: ClientMessage) => boolean): ClientMessage[] {
    const messages: ClientMessage[] = [];
    for (let next = this.incoming.get(this.expectedSeq); next; next = this.incoming.get(this.expectedSeq)) {
      if (!canTake(next)) break;
      this.incoming.delete(this.expectedSeq);
      this.incomingBytes -= next.payload.byteLength;
      messages.push(next);
      this.expectedSeq++;
    }
    return messages;
  }
}
