/**
 * The transport seen by the server: one WebSocket that carries bytes. The uWS adapter implements it, and so
 * does the in-memory twin (memory.ts) that drives the middle test tier. Nothing here knows uWS or AIP codecs:
 * decoding and encoding belong to the server's dispatch module.
 */

export interface Connection {
  /** Server-assigned connection id, for logs. */
  readonly id: string;
  /** The path the WebSocket was opened on (`/ws`, `/sessions/{id}/stream`). */
  readonly path: string;
  /** The negotiated subprotocol (`aip.msgpack.v1`), or null for none. */
  readonly protocol: string | null;
  readonly remoteAddress: string;
  /** True once the socket has closed (or close was requested). */
  readonly closed: boolean;
  /**
   * Sends one frame. Never drops: when the socket is backpressured the frame waits in the connection's outbound
   * queue, which is bounded by the slow-consumer budget. Returns false only if the connection is closed.
   */
  send(data: string | Uint8Array, isBinary: boolean): boolean;
  /** Bytes accepted but not yet handed to the kernel (the socket's buffer plus the outbound queue). */
  bufferedBytes(): number;
  close(code: number, reason: string): void;
}

/** What the transport calls for one connection. */
export interface SocketHandler {
  message(data: ArrayBuffer | Uint8Array | string, isBinary: boolean): void;
  closed(code: number): void;
  /** The connection's outbound buffer drained below the high-water mark (a writer that waited may go on). */
  drained?(): void;
}
