/**
 * A raw AIP test client on `ws`: sends frames as given and records every frame received, so tests can assert
 * exactly what went over the wire. Frames are decoded with the protocol codecs (JSON text or msgpack binary).
 */
import WebSocket from 'ws';
import {
  decodeServerMessage,
  jsonCodec,
  msgpackCodec,
  packValue,
  SUBPROTOCOL_MSGPACK,
  type ServerMessage,
} from '../../protocol/index.js';

export type Codec = 'json' | 'msgpack';

export interface Received {
  msg: ServerMessage;
  raw: string | Buffer;
  isBinary: boolean;
}

export class RawClient {
  readonly frames: Received[] = [];
  closeCode: number | null = null;
  closeReason = '';
  private waiters: {
    pred: (m: ServerMessage) => boolean;
    from: number;
    resolve: (m: ServerMessage) => void;
  }[] = [];
  private closeWaiters: ((code: number) => void)[] = [];
  private constructor(
    readonly ws: WebSocket,
    readonly codec: Codec,
  ) {
    ws.on('message', (data: Buffer, isBinary) => {
      const raw = isBinary ? data : data.toString('utf8');
      const c = isBinary ? msgpackCodec : jsonCodec;
      const d = decodeServerMessage(c, isBinary ? new Uint8Array(data) : raw, isBinary);
      if (!d.ok) throw new Error(`server sent an invalid frame: ${d.error.message}`);
      this.frames.push({ msg: d.value, raw, isBinary });
      this.check();
    });
    ws.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
      for (const w of this.closeWaiters.splice(0)) w(code);
    });
  }

  static connect(url: string, codec: Codec = 'json'): Promise<RawClient> {
    const ws = new WebSocket(url, codec === 'msgpack' ? [SUBPROTOCOL_MSGPACK] : [], {
      perMessageDeflate: false,
    });
    const client = new RawClient(ws, codec);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }

  /** Sends an object in this client's codec (msgpack: binary; json: text). */
  send(obj: Record<string, unknown>): void {
    if (this.codec === 'msgpack') this.ws.send(packValue(obj), { binary: true });
    else this.ws.send(JSON.stringify(obj));
  }

  sendText(text: string): void {
    this.ws.send(text);
  }

  /** Registers and waits for the first reply. */
  async register(clientId: string, extra: Record<string, unknown> = {}): Promise<ServerMessage> {
    const from = this.frames.length;
    this.send({ type: 'register', status: 'ok', client_id: clientId, ...extra });
    return this.next(() => true, 5000, from);
  }

  /** The next frame (received at or after index `from`, default: from now on) that matches. */
  next(
    pred: (m: ServerMessage) => boolean = () => true,
    timeoutMs = 5000,
    from = this.frames.length,
  ): Promise<ServerMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no matching frame within ${timeoutMs} ms; got ${this.frames.length} frames`)),
        timeoutMs,
      );
      this.waiters.push({
        pred,
        from,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
      this.check();
    });
  }

  /** Every frame of a type received so far. */
  ofType(type: string): ServerMessage[] {
    return this.frames.filter((f) => f.msg.type === type).map((f) => f.msg);
  }

  waitClose(timeoutMs = 5000): Promise<number> {
    if (this.closeCode !== null) return Promise.resolve(this.closeCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('socket did not close')), timeoutMs);
      this.closeWaiters.push((c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  }

  /** Answers one `command`: every action with `status` (result 'r'; a failure's error 'boom'). */
  answer(cmd: ServerMessage, status: 'success' | 'failure', error = 'boom'): void {
    this.send({
      type: 'command_results',
      status: 'continue',
      session_id: cmd.session_id,
      prev_response_id: cmd.response_id,
      action_results: (cmd.actions ?? []).map((a) => ({
        status,
        result: 'r',
        call_id: a.call_id,
        error: status === 'failure' ? error : undefined,
      })),
    });
  }

  /** Answers every `command` with success results (tool name echoed) until `stop()` is called. */
  autoAnswer(result: (tool: string, m: ServerMessage) => unknown = (t) => `did ${t}`): () => void {
    const onMsg = (): void => {
      const last = this.frames[this.frames.length - 1];
      if (!last || last.msg.type !== 'command') return;
      const m = last.msg;
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
    this.ws.on('message', onMsg);
    return () => this.ws.off('message', onMsg);
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
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
