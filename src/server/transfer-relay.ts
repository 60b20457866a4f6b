/**
 * UFO's binary and file transfers (ufo-aip.md §10) on a connection: validated with AipTransferReceiver and
 * relayed frame by frame to the other party of the session named in the metadata's `session_id`.
 * Nothing is buffered beyond the frame in hand; the peer's outbound queue applies backpressure as for any frame.
 * A size or MD5 mismatch is answered with an `error` frame carrying UFO's text.
 */
import { aipError, type AipError } from '../../protocol/index.js';
import { AipTransferReceiver } from '../channel/aip-transfer.js';
import type { ServerContext } from './context.js';
import type { ClientInfo, ClientLink } from '../state/client-directory.js';
import { sendError } from './dispatch.js';

export class TransferRelay {
  private readonly receiver: AipTransferReceiver;
  /** The peer of the transfer in progress, and the session it was found by. */
  private peer: ClientLink | null = null;
  private sessionId: unknown = null;
  /** The peer that has been sent part of the transfer in progress (told if it fails). */
  private forwardedTo: ClientLink | null = null;

  constructor(
    private readonly ctx: ServerContext,
    private readonly sender: ClientInfo,
  ) {
    this.receiver = new AipTransferReceiver({ maxBytes: ctx.config.maxPayloadBytes });
  }

  /** True while the next binary frame belongs to a transfer. */
  get busy(): boolean {
    return this.receiver.busy;
  }

  /** A transfer control frame (already decoded). Returns an error to report, or null. */
  text(obj: Record<string, unknown>): AipError | null {
    if (!this.receiver.busy || obj.type === 'file_transfer_start') {
      // a new start in the middle of a transfer abandons it: its receiver is told
      if (this.receiver.busy)
        this.tellReceiver(aipError('TRANSFER_BAD_METADATA', { detail: 'a new transfer began' }));
      const peer = this.peerFor(obj.session_id);
      if (!peer) return aipError('TRANSFER_NO_SESSION');
      this.peer = peer;
      this.sessionId = obj.session_id;
    } else if (!this.sessionGoesOn()) return this.failed(aipError('TRANSFER_NO_SESSION'));
    const r = this.receiver.text(obj);
    if (!r.ok) return this.failed(r.error);
    this.forward(JSON.stringify(obj), false);
    if (!this.receiver.busy) this.done();
    return null;
  }

  /** A binary frame while `busy`. */
  binary(bytes: Uint8Array): AipError | null {
    if (!this.sessionGoesOn()) return this.failed(aipError('TRANSFER_NO_SESSION'));
    const r = this.receiver.binary(bytes);
    if (!r.ok) return this.failed(r.error);
    this.forward(bytes, true);
    if (!this.receiver.busy) this.done();
    return null;
  }

  reset(): void {
    this.receiver.reset();
    this.done();
  }

  private done(): void {
    this.peer = null;
    this.forwardedTo = null;
  }

  private forward(data: string | Uint8Array, isBinary: boolean): void {
    // Control frames stay JSON text (UFO's framing); sendRaw copies bytes it has to queue.
    if (!this.peer) return;
    this.peer.sendRaw(data, isBinary);
    this.forwardedTo = this.peer;
  }

  /** The session of the transfer in progress still has the same other party (it may have ended mid-transfer). */
  private sessionGoesOn(): boolean {
    return this.peer !== null && this.peerFor(this.sessionId) === this.peer;
  }

  /**
   * The transfer failed: the sender gets the error (returned), and so does a receiver that already had part of it,
   * which would otherwise wait for the rest; nothing more of it is relayed.
   */
  private failed(err: AipError): AipError {
    this.receiver.reset();
    this.tellReceiver(err);
    this.done();
    return err;
  }

  /** A receiver that was sent part of the transfer gets its failure too (one that was sent nothing, nothing). */
  private tellReceiver(err: AipError): void {
    const peer = this.forwardedTo;
    this.forwardedTo = null;
    if (peer && !peer.closed) sendError(peer, err.message);
  }

  private peerFor(sessionId: unknown): ClientLink | null {
    if (typeof sessionId !== 'string') return null;
    const parties = this.ctx.tasks.parties(sessionId);
    if (!parties) return null;
    const me = this.sender.clientId;
    const other =
      parties.requesterId === me
        ? parties.executorId
        : parties.executorId === me
          ? parties.requesterId
          : null;
    if (!other || other === me) return null;
    const link = this.ctx.directory.link(other);
    return link && !link.closed ? link : null;
  }
}
