/**
 * A conformance client for aipd's SSM data channel, playing AWS session-manager-plugin's side over a real
 * WebSocket. Written from the reference (docs/ssm.md, the contract's A1–A5), with its own frame codec, so the
 * server's codec is checked against an independent one.
 *
 * It sends OpenDataChannelInput, answers the handshake, acks output (unless told to hold acks), delivers output
 * in sequence order (buffering later ones, dropping duplicates), and records every frame it saw.
 */
import { createHash, randomUUID } from 'node:crypto';
import WebSocket from 'ws';

export interface Frame {
  type: string;
  seq: number;
  flags: number;
  id: string;
  payloadType: number;
  payload: Buffer;
}

const uuidWire = (u: string): Buffer => {
  const b = Buffer.from(u.replace(/-/g, ''), 'hex');
  return Buffer.concat([b.subarray(8), b.subarray(0, 8)]);
};
const uuidRead = (w: Buffer): string => {
  const h = Buffer.concat([w.subarray(8, 16), w.subarray(0, 8)]).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

export function encodeFrame(f: Partial<Frame> & { type: string }, createdDate = Date.now()): Buffer {
  const payload = f.payload ?? Buffer.alloc(0);
  const b = Buffer.alloc(120 + payload.length);
  b.writeUInt32BE(116, 0);
  b.fill(0x20, 4, 36);
  b.write(f.type, 4, 'ascii');
  b.writeUInt32BE(1, 36);
  b.writeBigUInt64BE(BigInt(createdDate), 40);
  b.writeBigInt64BE(BigInt(f.seq ?? 0), 48);
  b.writeBigUInt64BE(BigInt(f.flags ?? 0), 56);
  uuidWire(f.id ?? randomUUID()).copy(b, 64);
  createHash('sha256').update(payload).digest().copy(b, 80);
  b.writeUInt32BE(f.payloadType ?? 0, 112);
  b.writeUInt32BE(payload.length, 116);
  payload.copy(b, 120);
  return b;
}

/** Decodes a frame, checking everything the plugin's reader relies on (throws when the server broke a rule). */
export function decodeFrame(b: Buffer): Frame {
  if (b.length < 120) throw new Error(`frame shorter than 120 bytes: ${b.length}`);
  if (b.readUInt32BE(0) !== 116) throw new Error(`HeaderLength ${b.readUInt32BE(0)}`);
  if (b.readBigUInt64BE(40) === 0n) throw new Error('CreatedDate 0');
  const payload = b.subarray(120);
  if (b.readUInt32BE(116) !== payload.length) throw new Error('PayloadLength mismatch');
  if (!createHash('sha256').update(payload).digest().equals(b.subarray(80, 112)))
    throw new Error('bad digest');
  return {
    type: b.subarray(4, 36).toString('ascii').trim(),
    seq: Number(b.readBigInt64BE(48)),
    flags: Number(b.readBigUInt64BE(56)),
    id: uuidRead(b.subarray(64, 80)),
    payloadType: b.readUInt32BE(112),
    payload: Buffer.from(payload),
  };
}

export class SsmTestClient {
  readonly ws: WebSocket;
  readonly clientId: string;
  /** Every frame received, in arrival order. */
  readonly frames: Frame[] = [];
  /** Output delivered in order (payload type 1), and flags received. */
  output = Buffer.alloc(0);
  readonly flags: number[] = [];
  readonly delivered: Frame[] = [];
  handshakeRequest: Record<string, unknown> | null = null;
  handshakeComplete = false;
  closedOutput: string | null = null;
  readonly closed: Promise<void>;
  /** When false, output is left unacked and undelivered (the plugin's "handler not ready"). */
  acceptOutput = true;
  /** When true, output is delivered but never acked. */
  holdAcks = false;
  /** Called with each delivered output payload (type 1). */
  onData: ((b: Buffer) => void) | null = null;
  private expected: number;
  private nextSeq: number;
  private readonly early = new Map<number, Frame>();
  /** Input sent and not acknowledged yet (resent by a timer); carried into a resumed client. */
  private readonly unacked = new Map<number, { frame: Buffer; sentAt: number }>();
  private readonly opened: Promise<void>;

  constructor(
    url: string,
    opts: { resume?: SsmTestClient; sizeOnHandshake?: { cols: number; rows: number } } = {},
  ) {
    // A resumed client is the same plugin process on a new socket: same ClientId, sequence state and buffers.
    const prev = opts.resume;
    this.clientId = prev?.clientId ?? randomUUID();
    this.expected = prev?.expected ?? 0;
    this.nextSeq = prev?.nextSeq ?? 0;
    if (prev) {
      this.output = Buffer.from(prev.output);
      for (const [k, v] of prev.early) this.early.set(k, v);
      for (const [k, v] of prev.unacked) this.unacked.set(k, v);
    }
    this.sizeOnHandshake = opts.sizeOnHandshake ?? null;
    this.ws = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.ws.once('close', () => resolve()));
    // Like the plugin: unacked input goes again once it waited longer than the (initial) RTO of 200 ms.
    const resend = setInterval(() => {
      if (this.ws.readyState !== WebSocket.OPEN) return;
      for (const u of this.unacked.values())
        if (Date.now() - u.sentAt >= 200) {
          u.sentAt = Date.now();
          this.ws.send(u.frame);
        }
    }, 100);
    void this.closed.then(() => clearInterval(resend));
    this.ws.on('message', (data: Buffer) => this.receive(data));
  }

  private readonly sizeOnHandshake: { cols: number; rows: number } | null;

  /** Sequence state to carry into a resumed client. */
  get state(): { expected: number; nextSeq: number } {
    return { expected: this.expected, nextSeq: this.nextSeq };
  }

  async open(token: string): Promise<void> {
    await this.opened;
    this.ws.send(
      JSON.stringify({
        MessageSchemaVersion: '1.0',
        RequestId: randomUUID(),
        TokenValue: token,
        ClientId: this.clientId,
        ClientVersion: '1.2.0.0',
      }),
    );
  }

  input(data: string | Buffer, payloadType = 1): number {
    const seq = this.nextSeq++;
    const payload = typeof data === 'string' ? Buffer.from(data) : data;
    const frame = encodeFrame({ type: 'input_stream_data', seq, payloadType, payload });
    this.unacked.set(seq, { frame, sentAt: Date.now() });
    this.ws.send(frame);
    return seq;
  }

  size(cols: number, rows: number): void {
    this.input(JSON.stringify({ cols, rows }), 3);
  }

  flag(value: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value);
    this.input(b, 10);
  }

  ack(f: Frame): void {
    const body = {
      AcknowledgedMessageType: f.type,
      AcknowledgedMessageId: f.id,
      AcknowledgedMessageSequenceNumber: f.seq,
      IsSequentialMessage: true,
    };
    this.ws.send(encodeFrame({ type: 'acknowledge', flags: 3, payload: Buffer.from(JSON.stringify(body)) }));
  }

  /** Output frames with sequence number `seq` received so far (resends included). */
  received(seq: number): Frame[] {
    return this.frames.filter((f) => f.type === 'output_stream_data' && f.seq === seq);
  }

  text(): string {
    return this.output.toString('utf8');
  }

  close(): void {
    this.ws.close();
  }

  private receive(data: Buffer): void {
    const f = decodeFrame(data);
    this.frames.push(f);
    if (f.type === 'acknowledge') {
      const n = (JSON.parse(f.payload.toString()) as { AcknowledgedMessageSequenceNumber: number })
        .AcknowledgedMessageSequenceNumber;
      this.unacked.delete(n);
      return;
    }
    if (f.type === 'channel_closed') {
      this.closedOutput = String((JSON.parse(f.payload.toString()) as { Output: string }).Output);
      return;
    }
    if (f.type !== 'output_stream_data') return;
    if (f.payload.length === 0) throw new Error(`empty stream data at seq ${f.seq}`);
    const handshake = f.payloadType === 5 || f.payloadType === 7;
    if (f.seq < this.expected) return; // duplicate: dropped without an ack, as the plugin does
    if (f.seq > this.expected) {
      if (!this.holdAcks) this.ack(f);
      this.early.set(f.seq, f);
      return;
    }
    if (!handshake && !this.acceptOutput) return;
    if (!this.holdAcks || handshake) this.ack(f);
    this.deliver(f);
    for (let next = this.early.get(this.expected); next; next = this.early.get(this.expected)) {
      this.early.delete(next.seq);
      this.deliver(next);
    }
  }

  private deliver(f: Frame): void {
    this.expected = f.seq + 1;
    this.delivered.push(f);
    if (f.payloadType === 5) {
      this.handshakeRequest = JSON.parse(f.payload.toString()) as Record<string, unknown>;
      const response = {
        ClientVersion: '1.2.0.0',
        ProcessedClientActions: [
          { ActionType: 'SessionType', ActionStatus: 1, ActionResult: null, Error: '' },
        ],
        Errors: null,
      };
      this.input(JSON.stringify(response), 6);
    } else if (f.payloadType === 7) {
      this.handshakeComplete = true;
      if (this.sizeOnHandshake) this.size(this.sizeOnHandshake.cols, this.sizeOnHandshake.rows);
    } else if (f.payloadType === 10) this.flags.push(f.payload.readUInt32BE(0));
    else {
      this.output = Buffer.concat([this.output, f.payload]);
      this.onData?.(f.payload);
    }
  }
}

export async function until(pred: () => boolean, what: () => string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting: ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
