/**
 * A local client's link: its byte connection plus the codec it negotiated. This is where an AIP message becomes
 * bytes (the dispatch module's encode step); the directory hands these out as `ClientLink`s.
 */
import { encodeServerMessage, negotiateCodec, type ServerMessageInput, type WireCodec } from '../../protocol/index.js';
import type { ClientLink } from '../state/client-directory.js';
import type { Connection } from '../transport/connection.js';

export class WirePeer implements ClientLink {
  readonly codec: WireCodec;

  constructor(private readonly conn: Connection) {
    this.codec = negotiateCodec(conn.protocol);
  }

  get id(): string {
    return this.conn.id;
  }

  get closed(): boolean {
    return this.conn.closed;
  }

  send(msg: ServerMessageInput): boolean {
    if (this.conn.closed) return false;
    return this.conn.send(encodeServerMessage(this.codec, msg), this.codec.binary);
  }

  sendRaw(data: string | Uint8Array, isBinary: boolean): boolean {
    return this.conn.send(data, isBinary);
  }

  bufferedBytes(): number {
    return this.conn.bufferedBytes();
  }

  close(code: number, reason: string): void {
    this.conn.close(code, reason);
  }
}
