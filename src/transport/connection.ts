/**
 * The transport seen by the server logic: one registered or registering WebSocket.
 * The uWS adapter implements it; an in-memory twin drives tests. Nothing here knows uWS.
 */
import type { ServerMessageInput, WireCodec } from '../../protocol/index.js';

export interface Connection {
  /** Server-assigned connection id, for logs. */
  readonly id: string;
  readonly codec: WireCodec;
  readonly remoteAddress: string;
  /** True once the socket has closed (or close was requested). */
  readonly closed: boolean;
  /**
   * Encodes and sends an AIP message. Never drops: when the socket is backpressured the frame is queued
   * in the connection's outbound queue. Returns false only if the connection is closed.
   */
  send(msg: ServerMessageInput): boolean;
  /** Sends pre-encoded bytes or text with the same guarantees as `send`. */
  sendRaw(data: string | Uint8Array, isBinary: boolean): boolean;
  /** Bytes accepted but not yet handed to the kernel (uWS buffer plus the outbound queue). */
  bufferedBytes(): number;
  close(code: number, reason: string): void;
}
