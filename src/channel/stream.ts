/**
 * A Node Duplex over a ChannelEndpoint, for shells, port forwarding and files.
 *
 * Reading pulls chunks from the endpoint only while the Readable wants more (push() returned true), so credit goes
 * back to the writer at the pace of the consumer. Writing resolves each chunk once credit allowed it out.
 * `end()` sends FIN (with `setTrailer()`'s object, if any); destroying an unfinished channel sends RESET.
 */
import { Duplex } from 'node:stream';
import { aipError } from '../../protocol/index.js';
import type { ChannelEndpoint } from './endpoint.js';

export class ChannelDuplex extends Duplex {
  private wantRead = false;
  private trailerOut: Record<string, unknown> | null = null;

  constructor(
    readonly endpoint: ChannelEndpoint,
    opts: { readableHighWaterMark?: number } = {},
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: opts.readableHighWaterMark ?? 16 * 1024 });
    endpoint.onReadable(() => this.pull());
    endpoint.onStateChange(() => {
      if (endpoint.state === 'reset' && !this.destroyed)
        this.destroy(endpoint.error ?? aipError('CHANNEL_CANCELLED'));
    });
  }

  /** JSON sent with the FIN when the writable side ends (e.g. `{exit_code: 0}`). */
  setTrailer(trailer: Record<string, unknown>): void {
    this.trailerOut = trailer;
  }
  /** The trailer the peer sent with its FIN. */
  get remoteTrailer(): Record<string, unknown> | null {
    return this.endpoint.trailer;
  }

  override _read(): void {
    this.wantRead = true;
    this.pull();
  }

  private pull(): void {
    while (this.wantRead) {
      let c: Uint8Array | null | undefined;
      try {
        c = this.endpoint.take();
      } catch {
        return; // reset: the state listener destroys the stream
      }
      if (c === undefined) return;
      if (c === null) {
        this.wantRead = false;
        this.push(null);
        return;
      }
      this.wantRead = this.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.endpoint.write(chunk).then(
      () => cb(),
      (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))),
    );
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.endpoint.end(this.trailerOut).then(
      () => cb(),
      (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.endpoint.finished) this.endpoint.reset(aipError('CHANNEL_CANCELLED'));
    cb(err);
  }
}
