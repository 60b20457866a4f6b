/**
 * An AIP test client over the in-memory transport (src/transport/memory.ts): the twin of test/helpers/raw-client.ts
 * with no socket. It sends frames as given and records every frame received, decoded with the protocol codecs
 * (JSON text or msgpack binary), so tests can assert exactly what crossed the (virtual) wire.
 */
import {
  decodeServerMessage,
  jsonCodec,
  msgpackCodec,
  packValue,
  SUBPROTOCOL_MSGPACK,
  type ServerMessage,
} from '../../protocol/index.js';
import type { MemoryClientSocket, MemoryTransport } from '../../src/transport/memory.js';
import type { HttpResponse } from '../../src/transport/http.js';

export type Codec = 'json' | 'msgpack';

export interface Received {
  readonly msg: ServerMessage;
  readonly raw: string | Uint8Array;
  readonly isBinary: boolean;
}

export interface ConnectOptions {
  /** The `token` query parameter; defaults to the harness key. `null` sends no token at all. */
  token?: string | null;
  /** The subprotocol offer; defaults to `aip.msgpack.v1` for the msgpack codec and none for JSON. */
  protocol?: string | null;
}

/** Thrown by `MemoryClient.connect` when the upgrade gate refuses the connection. */
export class RefusedError extends Error {
  constructor(readonly response: HttpResponse) {
    super(`connection refused: HTTP ${response.status} ${String(response.body)}`);
  }
}

interface Waiter {
  readonly pred: (m: ServerMessage) => boolean;
  readonly from: number;
  readonly resolve: (m: ServerMessage) => void;
  readonly reject: (e: Error) => void;
}

export class MemoryClient {
  readonly frames: Received[] = [];
  /** Frames the server sent that did not decode as valid server messages (should stay empty). */
  readonly invalid: string[] = [];
  closeCode: number | null = null;
  closeReason = '';
  private waiters: Waiter[] = [];
  private readonly frameListeners: ((r: Received) => void)[] = [];

  private constructor(
    readonly socket: MemoryClientSocket,
    readonly codec: Codec,
  ) {
    socket.onFrame((f) => {
      const c = f.isBinary ? msgpackCodec : jsonCodec;
      const d = decodeServerMessage(c, f.data, f.isBinary);
      if (!d.ok) {
        this.invalid.push(d.error.message);
        for (const w of this.waiters.splice(0))
          w.reject(new Error(`server sent an invalid frame: ${d.error.message}`));
        return;
      }
      const r: Received = { msg: d.value, raw: f.data, isBinary: f.isBinary };
      this.frames.push(r);
      for (const l of this.frameListeners.slice()) l(r);
      this.check();
    });
    void socket.whenClosed().then(({ code, reason }) => {
      this.closeCode = code;
      this.closeReason = reason;
    });
  }

  /** Opens a connection; throws `RefusedError` when the server refuses the upgrade. */
  static connect(
    memory: MemoryTransport,
    token: string,
    codec: Codec = 'json',
    opts: ConnectOptions = {},
  ): MemoryClient {
    const t = opts.token === undefined ? token : opts.token;
    const query = t === null ? '' : `token=${encodeURIComponent(t)}`;
    const protocol =
      opts.protocol !== undefined ? opts.protocol : codec === 'msgpack' ? SUBPROTOCOL_MSGPACK : null;
    const r = memory.connect(query, protocol);
    if ('refused' in r) throw new RefusedError(r.refused);
    return new MemoryClient(r, codec);
  }

  /** The negotiated subprotocol, or null. */
  get protocol(): string | null {
    return this.socket.protocol;
  }

  get closed(): boolean {
    return this.socket.closed;
  }

  /** Sends an object in this client's codec (msgpack: binary; json: text). */
  send(obj: Record<string, unknown>): void {
    if (this.codec === 'msgpack') this.socket.send(packValue(obj));
    else this.socket.send(JSON.stringify(obj));
  }

  sendText(text: string): void {
    this.socket.send(text);
  }

  sendBytes(bytes: Uint8Array): void {
    this.socket.send(bytes);
  }

  /** Registers and waits for the first reply (the heartbeat ACK, or the refusal's error frame). */
  register(clientId: string, extra: Record<string, unknown> = {}, timeoutMs = 2000): Promise<ServerMessage> {
    const from = this.frames.length;
    this.send({ type: 'register', status: 'ok', client_id: clientId, ...extra });
    return this.next(() => true, timeoutMs, from);
  }

  /** The next frame (received at or after index `from`, default: from now on) that matches. */
  next(
    pred: (m: ServerMessage) => boolean = () => true,
    timeoutMs = 2000,
    from = this.frames.length,
  ): Promise<ServerMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(
          new Error(
            `no matching frame within ${timeoutMs} ms; got ${this.frames.length} frames: ${this.types().join(',')}`,
          ),
        );
      }, timeoutMs);
      const waiter: Waiter = {
        pred,
        from,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.push(waiter);
      this.check();
    });
  }

  /** Every frame of a type received so far. */
  ofType(type: ServerMessage['type']): ServerMessage[] {
    return this.frames.filter((f) => f.msg.type === type).map((f) => f.msg);
  }

  /** The types of every frame received so far, in order. */
  types(): string[] {
    return this.frames.map((f) => f.msg.type);
  }

  /** Resolves with the close code once the connection is closed (by either side). */
  async waitClose(timeoutMs = 2000): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`connection did not close within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      const { code } = await Promise.race([this.socket.whenClosed(), timeout]);
      this.closeCode = code;
      return code;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Answers every `command` with success results (tool name echoed) until the returned function is called. */
  autoAnswer(result: (tool: string, m: ServerMessage) => unknown = (t) => `did ${t}`): () => void {
    const onFrame = ({ msg: m }: Received): void => {
      if (m.type !== 'command') return;
      this.send({
        type: 'command_results',
        status: 'continue',
        session_id: m.session_id,
        prev_response_id: m.response_id,
        action_results: (m.actions ?? []).map((a) => ({
          status: 'success',
          result: result(a.tool_name, m),
          call_id: a.call_id,
        })),
      });
    };
    this.frameListeners.push(onFrame);
    return () => {
      const i = this.frameListeners.indexOf(onFrame);
      if (i >= 0) this.frameListeners.splice(i, 1);
    };
  }

  /** Closes from the client side with a close handshake. */
  close(code = 1000, reason = ''): void {
    this.socket.close(code, reason);
  }

  /** Drops the connection without a close frame (the server sees 1006). */
  terminate(): void {
    this.socket.terminate();
  }

  private check(): void {
    this.waiters = this.waiters.filter((w) => {
      for (let i = w.from; i < this.frames.length; i++) {
        if (w.pred(this.frames[i]!.msg)) {
          w.resolve(this.frames[i]!.msg);
          return false;
        }
      }
      return true;
    });
  }
}
