/**
 * Data-channel frames: multiplexed, ordered, credit-controlled byte channels inside one WebSocket.
 *
 * Every channel frame is a BINARY WebSocket frame whose first byte is 0xC1. 0xC1 is "never used" in msgpack and
 * is never valid in UTF-8, so in JSON mode and in msgpack mode a receiver tells a channel frame from an AIP
 * message by its first byte (`isChannelFrame`). All integers are big-endian.
 *
 *   offset 0  u8   0xC1 marker
 *   offset 1  u8   op
 *   offset 2  u32  channel id (per connection; ids chosen by a client are odd, ids chosen by the server even)
 *   offset 6  ...  op-specific:
 *     OPEN    u32 window (the opener's receive window, bytes), then UTF-8 JSON {session_id, kind, params}
 *     ACCEPT  u32 window (the acceptor's receive window, bytes)
 *     REJECT  u16 code (catalogue 7000–7099), then UTF-8 reason
 *     DATA    u32 seq (0, 1, 2… per direction), then ≥ 1 payload byte
 *     ACK     u32 seq (cumulative: frames consumed), u64 bytes consumed (cumulative), u32 window (bytes)
 *     FIN     u32 seq (= number of DATA frames sent), then optional UTF-8 JSON trailer (e.g. {exit_code})
 *     RESET   u16 code, then UTF-8 reason
 *
 * Credit rule: a writer never has more than `window` bytes in flight, where in flight = bytes sent − the reader's
 * latest cumulative `bytes consumed`. The reader advertises its window in OPEN/ACCEPT and again in each ACK.
 */
import { z } from 'zod';
import { aipError, type AipError } from './errors.js';
import type { Decoded } from './codec/limits.js';

export const CHANNEL_MARKER = 0xc1;
export const ChannelOp = { OPEN: 1, ACCEPT: 2, REJECT: 3, DATA: 4, ACK: 5, FIN: 6, RESET: 7 } as const;
export type ChannelOp = (typeof ChannelOp)[keyof typeof ChannelOp];

export const CHANNEL_KINDS = ['file', 'stream', 'port'] as const;
export type ChannelKind = (typeof CHANNEL_KINDS)[number];

/** Largest OPEN body / FIN trailer / reason accepted, in bytes. */
export const MAX_CHANNEL_META_BYTES = 64 * 1024;
export const MAX_REASON_BYTES = 1024;
export const CHANNEL_HEADER_BYTES = 6;

export const OpenBody = z.object({
  session_id: z.string().min(1).max(256),
  kind: z.enum(CHANNEL_KINDS),
  params: z.record(z.string(), z.unknown()).default({}),
});
export type OpenBody = z.infer<typeof OpenBody>;

export type ChannelFrame =
  | { op: typeof ChannelOp.OPEN; channel: number; window: number; body: OpenBody }
  | { op: typeof ChannelOp.ACCEPT; channel: number; window: number }
  | { op: typeof ChannelOp.REJECT; channel: number; code: number; reason: string }
  | { op: typeof ChannelOp.DATA; channel: number; seq: number; payload: Uint8Array }
  | { op: typeof ChannelOp.ACK; channel: number; seq: number; consumed: number; window: number }
  | { op: typeof ChannelOp.FIN; channel: number; seq: number; trailer: Record<string, unknown> | null }
  | { op: typeof ChannelOp.RESET; channel: number; code: number; reason: string };

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

/** True when `bytes` is a channel frame (first byte 0xC1). */
export function isChannelFrame(bytes: Uint8Array | ArrayBuffer): boolean {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return b.byteLength > 0 && b[0] === CHANNEL_MARKER;
}

function header(op: ChannelOp, channel: number, extra: number): { buf: Uint8Array; view: DataView } {
  const buf = new Uint8Array(CHANNEL_HEADER_BYTES + extra);
  const view = new DataView(buf.buffer);
  buf[0] = CHANNEL_MARKER;
  buf[1] = op;
  view.setUint32(2, channel >>> 0);
  return { buf, view };
}

function truncUtf8(s: string, max: number): Uint8Array {
  const b = enc.encode(s);
  if (b.byteLength <= max) return b;
  let end = max;
  while (end > 0 && ((b[end] ?? 0) & 0xc0) === 0x80) end--; // do not split a code point
  return b.subarray(0, end);
}

export function encodeOpen(channel: number, window: number, body: OpenBody): Uint8Array {
  const json = enc.encode(JSON.stringify(body));
  const { buf, view } = header(ChannelOp.OPEN, channel, 4 + json.byteLength);
  view.setUint32(6, window >>> 0);
  buf.set(json, 10);
  return buf;
}
export function encodeAccept(channel: number, window: number): Uint8Array {
  const { buf, view } = header(ChannelOp.ACCEPT, channel, 4);
  view.setUint32(6, window >>> 0);
  return buf;
}
function encodeCoded(op: ChannelOp, channel: number, code: number, reason: string): Uint8Array {
  const r = truncUtf8(reason, MAX_REASON_BYTES);
  const { buf, view } = header(op, channel, 2 + r.byteLength);
  view.setUint16(6, code & 0xffff);
  buf.set(r, 8);
  return buf;
}
export function encodeReject(channel: number, code: number, reason: string): Uint8Array {
  return encodeCoded(ChannelOp.REJECT, channel, code, reason);
}
export function encodeReset(channel: number, code: number, reason: string): Uint8Array {
  return encodeCoded(ChannelOp.RESET, channel, code, reason);
}
export function encodeData(channel: number, seq: number, payload: Uint8Array): Uint8Array {
  const { buf, view } = header(ChannelOp.DATA, channel, 4 + payload.byteLength);
  view.setUint32(6, seq >>> 0);
  buf.set(payload, 10);
  return buf;
}
export function encodeAck(channel: number, seq: number, consumed: number, window: number): Uint8Array {
  const { buf, view } = header(ChannelOp.ACK, channel, 16);
  view.setUint32(6, seq >>> 0);
  view.setBigUint64(10, BigInt(consumed));
  view.setUint32(18, window >>> 0);
  return buf;
}
export function encodeFin(
  channel: number,
  seq: number,
  trailer: Record<string, unknown> | null = null,
): Uint8Array {
  const t = trailer ? enc.encode(JSON.stringify(trailer)) : new Uint8Array(0);
  const { buf, view } = header(ChannelOp.FIN, channel, 4 + t.byteLength);
  view.setUint32(6, seq >>> 0);
  buf.set(t, 10);
  return buf;
}

/** Encodes any decoded frame again (the router uses it to re-address frames). */
export function encodeFrame(f: ChannelFrame): Uint8Array {
  switch (f.op) {
    case ChannelOp.OPEN:
      return encodeOpen(f.channel, f.window, f.body);
    case ChannelOp.ACCEPT:
      return encodeAccept(f.channel, f.window);
    case ChannelOp.REJECT:
      return encodeReject(f.channel, f.code, f.reason);
    case ChannelOp.DATA:
      return encodeData(f.channel, f.seq, f.payload);
    case ChannelOp.ACK:
      return encodeAck(f.channel, f.seq, f.consumed, f.window);
    case ChannelOp.FIN:
      return encodeFin(f.channel, f.seq, f.trailer);
    case ChannelOp.RESET:
      return encodeReset(f.channel, f.code, f.reason);
  }
}

function bad(detail: string): { ok: false; error: AipError } {
  return { ok: false, error: aipError('CHANNEL_BAD_FRAME', { detail }) };
}

function utf8(b: Uint8Array): string | null {
  try {
    return dec.decode(b);
  } catch {
    return null;
  }
}

function parseJsonObject(b: Uint8Array): Record<string, unknown> | string {
  if (b.byteLength > MAX_CHANNEL_META_BYTES)
    return `metadata of ${b.byteLength} bytes exceeds ${MAX_CHANNEL_META_BYTES}`;
  const text = utf8(b);
  if (text === null) return 'metadata is not valid UTF-8';
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'metadata is not valid JSON';
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'metadata must be a JSON object';
  if (Object.prototype.hasOwnProperty.call(v, '__proto__')) return 'metadata has a forbidden key';
  return v as Record<string, unknown>;
}

const MIN_LEN: Readonly<Record<number, number>> = { 1: 10, 2: 10, 3: 8, 4: 11, 5: 22, 6: 10, 7: 8 };

/** Decodes one channel frame. Never throws; bad input gives CHANNEL_BAD_FRAME. DATA payloads are views, not copies. */
export function decodeChannelFrame(data: Uint8Array | ArrayBuffer): Decoded<ChannelFrame> {
  const b = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (b.byteLength < CHANNEL_HEADER_BYTES)
    return bad(`frame of ${b.byteLength} bytes is shorter than the 6-byte header`);
  if (b[0] !== CHANNEL_MARKER) return bad('first byte is not 0xC1');
  const op = b[1] ?? 0;
  const min = MIN_LEN[op];
  if (min === undefined) return bad(`unknown op ${op}`);
  if (b.byteLength < min) return bad(`op ${op} needs at least ${min} bytes, got ${b.byteLength}`);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const channel = view.getUint32(2);
  switch (op) {
    case ChannelOp.OPEN: {
      const window = view.getUint32(6);
      const obj = parseJsonObject(b.subarray(10));
      if (typeof obj === 'string') return bad(`OPEN: ${obj}`);
      const parsed = OpenBody.safeParse(obj);
      if (!parsed.success)
        return bad(
          `OPEN: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
        );
      return { ok: true, value: { op, channel, window, body: parsed.data } };
    }
    case ChannelOp.ACCEPT:
      return { ok: true, value: { op, channel, window: view.getUint32(6) } };
    case ChannelOp.REJECT:
    case ChannelOp.RESET: {
      const rb = b.subarray(8);
      if (rb.byteLength > MAX_REASON_BYTES) return bad(`reason longer than ${MAX_REASON_BYTES} bytes`);
      const reason = utf8(rb);
      if (reason === null) return bad('reason is not valid UTF-8');
      return { ok: true, value: { op, channel, code: view.getUint16(6), reason } };
    }
    case ChannelOp.DATA:
      return { ok: true, value: { op, channel, seq: view.getUint32(6), payload: b.subarray(10) } };
    case ChannelOp.ACK: {
      if (b.byteLength !== 22) return bad(`ACK must be 22 bytes, got ${b.byteLength}`);
      const consumed = view.getBigUint64(10);
      if (consumed > BigInt(Number.MAX_SAFE_INTEGER)) return bad('ACK consumed bytes out of range');
      return {
        ok: true,
        value: {
          op,
          channel,
          seq: view.getUint32(6),
          consumed: Number(consumed),
          window: view.getUint32(18),
        },
      };
    }
    default: {
      // FIN
      const tb = b.subarray(10);
      let trailer: Record<string, unknown> | null = null;
      if (tb.byteLength > 0) {
        const obj = parseJsonObject(tb);
        if (typeof obj === 'string') return bad(`FIN: ${obj}`);
        trailer = obj;
      }
      return { ok: true, value: { op: ChannelOp.FIN, channel, seq: view.getUint32(6), trailer } };
    }
  }
}
