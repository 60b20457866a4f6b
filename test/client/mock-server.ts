/**
 * A small scripted AIP server for client tests, on `ws`'s WebSocketServer (port 0). It checks the token,
 * negotiates the msgpack subprotocol, answers `register`, and records every decoded client frame.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  decodeClientMessage,
  encodeServerMessage,
  negotiateCodec,
  SUBPROTOCOL_MSGPACK,
  type ClientMessage,
  type ServerMessageInput,
  type WireCodec,
} from '../../protocol/index.js';

export interface MockConn {
  ws: WebSocket;
  codec: WireCodec;
  protocol: string;
  /** Decoded frames after `register`, in arrival order. */
  messages: ClientMessage[];
  /** Whether each received frame was binary. */
  binary: boolean[];
  /** Binary frames starting with 0xC1 (data-channel frames), not decoded. */
  raw: Buffer[];
  send(msg: ServerMessageInput): void;
}

export interface MockOptions {
  token?: string;
  /** Returns an error text to refuse the registration, or null to accept it. */
  register?: (msg: ClientMessage) => string | null;
  /** Called for each frame after `register`. */
  onMessage?: (conn: MockConn, msg: ClientMessage) => void;
}

type Waiter = {
  pred: (m: ClientMessage) => boolean;
  resolve: (v: { conn: MockConn; msg: ClientMessage }) => void;
};

export class MockAipServer {
  readonly conns: MockConn[] = [];
  readonly registrations: ClientMessage[] = [];
  onMessage: MockOptions['onMessage'];
  private waiters: Waiter[] = [];

  private constructor(
    private readonly wss: WebSocketServer,
    readonly port: number,
    private readonly opts: MockOptions,
  ) {
    this.onMessage = opts.onMessage;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  static async start(opts: MockOptions = {}): Promise<MockAipServer> {
    const token = opts.token ?? 'secret';
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      path: '/ws',
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL_MSGPACK) ? SUBPROTOCOL_MSGPACK : false),
      verifyClient: (info, cb) =>
        cb(new URL(info.req.url ?? '', 'http://x').searchParams.get('token') === token, 403),
    });
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    const server = new MockAipServer(wss, (wss.address() as AddressInfo).port, opts);
    wss.on('connection', (ws) => server.accept(ws));
    return server;
  }

  /** Resolves with the next client frame (after register) matching `pred`, including ones already received. */
  next(pred: (m: ClientMessage) => boolean = () => true): Promise<{ conn: MockConn; msg: ClientMessage }> {
    for (const conn of this.conns) {
      const msg = conn.messages.find(pred);
      if (msg) {
        conn.messages.splice(conn.messages.indexOf(msg), 1);
        return Promise.resolve({ conn, msg });
      }
    }
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  /** The most recently registered connection. */
  get last(): MockConn {
    const c = this.conns.at(-1);
    if (!c) throw new Error('no connection');
    return c;
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private accept(ws: WebSocket): void {
    const codec = negotiateCodec(ws.protocol);
    let registered = false;
    const conn: MockConn = {
      ws,
      codec,
      protocol: ws.protocol,
      messages: [],
      binary: [],
      raw: [],
      send: (msg) => {
        const data = encodeServerMessage(codec, msg);
        ws.send(data, { binary: codec.binary });
      },
    };
    ws.on('message', (data, isBinary) => {
      if (isBinary && (data as Buffer)[0] === 0xc1) {
        conn.raw.push(Buffer.from(data as Buffer));
        return;
      }
      const decoded = decodeClientMessage(codec, data as Buffer, isBinary);
      if (!decoded.ok) throw decoded.error;
      const msg = decoded.value;
      if (!registered) {
        this.registrations.push(msg);
        const refusal = this.opts.register?.(msg) ?? null;
        if (refusal !== null) {
          conn.send({ type: 'error', status: 'error', error: refusal, response_id: 'r-reg' });
          ws.close(1000);
          return;
        }
        registered = true;
        this.conns.push(conn);
        conn.send({ type: 'heartbeat', status: 'ok', response_id: 'r-reg' });
        return;
      }
      conn.binary.push(isBinary);
      const i = this.waiters.findIndex((w) => w.pred(msg));
      if (i !== -1) {
        const [w] = this.waiters.splice(i, 1);
        w!.resolve({ conn, msg });
      } else {
        conn.messages.push(msg);
      }
      this.onMessage?.(conn, msg);
    });
  }
}
