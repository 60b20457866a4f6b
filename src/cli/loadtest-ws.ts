/**
 * A lean RFC 6455 client on `net.Socket` for load generation (used by `aipd loadtest` and bench/).
 *
 * It exists because the load generator, not the server, is usually the bottleneck on a small box:
 * frames are masked with an all-zero key (legal; XOR with zero is free, the server still unmasks),
 * TCP_NODELAY is on, and several frames can be written with one syscall via `sendMany`.
 * No extensions, no TLS, no redirects. Fragmented messages are reassembled; pings are answered.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';

export interface RawWsOptions {
  host: string;
  port: number;
  /** Path with query string, e.g. `/ws?token=k`. */
  path: string;
  /** Offered subprotocol (Sec-WebSocket-Protocol), if any. */
  protocol?: string;
  headers?: Readonly<Record<string, string>>;
  /** Handshake deadline in ms (default 10 s). */
  timeoutMs?: number;
}

export type WsData = string | Uint8Array;

const OP_CONT = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;

/** Builds one masked (zero key) client frame. */
export function buildFrame(data: WsData, binary: boolean, opcode = binary ? OP_BINARY : OP_TEXT): Buffer {
  const len = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
  const head = len < 126 ? 6 : len < 65536 ? 8 : 14;
  const buf = Buffer.allocUnsafe(head + len);
  buf[0] = 0x80 | opcode;
  if (len < 126) buf[1] = 0x80 | len;
  else if (len < 65536) {
    buf[1] = 0x80 | 126;
    buf.writeUInt16BE(len, 2);
  } else {
    buf[1] = 0x80 | 127;
    buf.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    buf.writeUInt32BE(len >>> 0, 6);
  }
  buf.writeUInt32BE(0, head - 4); // zero mask key
  if (typeof data === 'string') buf.write(data, head, 'utf8');
  else buf.set(data, head);
  return buf;
}

export class RawWs {
  /** Called once per complete data message. Text arrives as a string, binary as a Buffer (valid only during the call). */
  onMessage: (data: string | Buffer, isBinary: boolean) => void = () => {};
  onClose: (code: number, hadError: boolean) => void = () => {};
  closed = false;
  bytesIn = 0;
  bytesOut = 0;
  private pending: Buffer | null = null;
  private fragments: Buffer[] = [];
  private fragOpcode = 0;
  private closeCode = 1006;

  private constructor(private readonly sock: net.Socket) {}

  static connect(opts: RawWsOptions): Promise<RawWs> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: opts.host, port: opts.port, noDelay: true });
      const key = randomBytes(16).toString('base64');
      let head: Buffer = Buffer.alloc(0);
      let settled = false;
      const timer = setTimeout(() => fail(new Error('handshake timeout')), opts.timeoutMs ?? 10_000);
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        reject(err);
      };
      sock.once('error', fail);
      sock.once('close', () => fail(new Error('closed during handshake')));
      sock.once('connect', () => {
        const lines = [
          `GET ${opts.path} HTTP/1.1`,
          `Host: ${opts.host}:${opts.port}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Key: ${key}`,
          'Sec-WebSocket-Version: 13',
        ];
        if (opts.protocol) lines.push(`Sec-WebSocket-Protocol: ${opts.protocol}`);
        for (const [k, v] of Object.entries(opts.headers ?? {})) lines.push(`${k}: ${v}`);
        sock.write(lines.join('\r\n') + '\r\n\r\n');
      });
      const onData = (chunk: Buffer): void => {
        head = head.length ? Buffer.concat([head, chunk]) : chunk;
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > 16384) fail(new Error('handshake response too large'));
          return;
        }
        const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
        if (!/^HTTP\/1\.1 101 /.test(status)) return fail(new Error(`handshake refused: ${status}`));
        if (
          opts.protocol &&
          !new RegExp(`^sec-websocket-protocol:\\s*${opts.protocol}\\s*$`, 'im').test(
            head.subarray(0, end).toString('latin1'),
          )
        )
          return fail(new Error(`server did not accept subprotocol ${opts.protocol}`));
        settled = true;
        clearTimeout(timer);
        sock.removeListener('data', onData);
        sock.removeAllListeners('error');
        sock.removeAllListeners('close');
        const ws = new RawWs(sock);
        sock.on('data', (c: Buffer) => ws.receive(c));
        sock.on('error', () => {});
        sock.on('close', (hadError) => ws.finish(hadError));
        resolve(ws);
        const rest = head.subarray(end + 4);
        if (rest.length) ws.receive(rest);
      };
      sock.on('data', onData);
    });
  }

  send(data: WsData, binary: boolean): void {
    if (this.closed) return;
    const f = buildFrame(data, binary);
    this.bytesOut += f.length;
    this.sock.write(f);
  }

  /** Writes several pre-built frames (from `buildFrame`) with one syscall. */
  sendFrames(frames: readonly Buffer[]): void {
    if (this.closed || frames.length === 0) return;
    const buf = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    this.bytesOut += buf.length;
    this.sock.write(buf);
  }

  /** Bytes queued in the socket's user-space write buffer. */
  get writableLength(): number {
    return this.sock.writableLength;
  }

  close(code = 1000): void {
    if (this.closed) return;
    const body = Buffer.alloc(2);
    body.writeUInt16BE(code, 0);
    this.sock.end(buildFrame(body, true, OP_CLOSE));
    this.closed = true;
    setTimeout(() => this.sock.destroy(), 1000).unref();
  }

  destroy(): void {
    this.closed = true;
    this.sock.destroy();
  }

  private finish(hadError: boolean): void {
    this.closed = true;
    this.onClose(this.closeCode, hadError);
  }

  private receive(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    let off = 0;
    while (buf.length - off >= 2) {
      const b0 = buf[off]!;
      const b1 = buf[off + 1]!;
      let len = b1 & 0x7f;
      let p = off + 2;
      if (len === 126) {
        if (buf.length - off < 4) break;
        len = buf.readUInt16BE(p);
        p += 2;
      } else if (len === 127) {
        if (buf.length - off < 10) break;
        len = buf.readUInt32BE(p) * 2 ** 32 + buf.readUInt32BE(p + 4);
        p += 8;
      }
      if (b1 & 0x80) p += 4; // servers must not mask; tolerate and ignore the key (payload would be garbage)
      if (buf.length < p + len) break;
      const payload = buf.subarray(p, p + len);
      off = p + len;
      this.frame(b0 & 0x80, b0 & 0x0f, payload);
      if (this.closed && this.sock.destroyed) return;
    }
    if (off < buf.length) {
      buf = buf.subarray(off);
      this.pending = Buffer.from(buf); // copy: the chunk may be reused by the caller
    }
  }

  private frame(fin: number, opcode: number, payload: Buffer): void {
    if (opcode >= 0x8) {
      if (opcode === OP_PING) this.sock.write(buildFrame(payload, true, 0xa));
      else if (opcode === OP_CLOSE) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        if (!this.closed) {
          this.closed = true;
          this.sock.end(buildFrame(payload.subarray(0, 2), true, OP_CLOSE));
        }
      }
      return;
    }
    if (opcode !== OP_CONT && !fin) {
      this.fragOpcode = opcode;
      this.fragments = [Buffer.from(payload)];
      return;
    }
    if (opcode === OP_CONT) {
      this.fragments.push(Buffer.from(payload));
      if (!fin) return;
      const whole = Buffer.concat(this.fragments);
      this.fragments = [];
      this.deliver(this.fragOpcode, whole);
      return;
    }
    this.deliver(opcode, payload);
  }

  private deliver(opcode: number, payload: Buffer): void {
    if (opcode === OP_TEXT) this.onMessage(payload.toString('utf8'), false);
    else this.onMessage(payload, true);
  }
}
