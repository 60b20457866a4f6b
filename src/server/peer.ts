/**
 * A local client's link: its byte connection plus the codec it negotiated. This is where an AIP message becomes
 * bytes (the dispatch module's encode step); the directory hands these out as `ClientLink`s.
 */
import {
  encodeServerMessage,
  negotiateCodec,
  type ServerMessageInput,
  type WireCodec,
} from '../../protocol/index.js';
import type { ClientLink } from '../state/client-directory.js';
import type { Connection } from '../transport/connection.js';

export class WirePeer implements ClientLink {
  readonly codec: WireCodec;

  constructor(private readonly socket: Connection) {
    this.codec = negotiateCodec(socket.protocol);
  }

  get id(): string {
    return this.socket.id;
  }

  get closed(): boolean {
    return this.socket.closed;
  }

  send(msg: ServerMessageInput): boolean {
    if (this.socket.closed) return false;
    return this.socket.send(encodeServerMessage(this.codec, msg), this.codec.binary);
  }

  sendRaw(data: string | Uint8Array, isBinary: boolean): boolean {
    return this.socket.send(data, isBinary);
  }

  bufferedBytes(): number {
    return this.socket.bufferedBytes();
  }

  close(code: number, reason: string): void {
    this.socket.close(code, reason);
  }
}
