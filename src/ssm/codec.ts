/**
 * The SSM data channel's binary frame (`ClientMessage`, docs/ssm.md): a 120-byte big-endian header and the payload.
 *
 *   offset  size  field
 *   0       4     HeaderLength = 116 (the PayloadLength field is not counted)
 *   4       32    MessageType, ASCII, right-padded with spaces
 *   36      4     SchemaVersion (1)
 *   40      8     CreatedDate, Unix epoch milliseconds
 *   48      8     SequenceNumber (int64)
 *   56      8     Flags (bit0 SYN, bit1 FIN)
 *   64      16    MessageId: a UUID with its two 8-byte halves swapped (bytes 8..15 first)
 *   80      32    PayloadDigest: SHA-256 of the payload
 *   112     4     PayloadType
 *   116     4     PayloadLength
 *   120     n     Payload
 *
 * `encodeClientMessage` only ever writes frames the AWS plugin's reader survives: HeaderLength 116, at least 120
 * bytes, CreatedDate ≠ 0 and a correct digest. `decodeClientMessage` validates in the plugin's order and answers
 * a reason instead of throwing, so a bad frame is dropped and logged, never fatal.
 */
import { createHash, randomUUID } from 'node:crypto';

export const HEADER_LENGTH = 116;
export const PAYLOAD_OFFSET = HEADER_LENGTH + 4;
const TYPE_BYTES = 32;

export const MessageType = {
  INPUT: 'input_stream_data',
  OUTPUT: 'output_stream_data',
  ACK: 'acknowledge',
  CHANNEL_CLOSED: 'channel_closed',
  START_PUBLICATION: 'start_publication',
  PAUSE_PUBLICATION: 'pause_publication',
} as const;

export const PayloadType = {
  OUTPUT: 1,
  ERROR: 2,
  SIZE: 3,
  PARAMETER: 4,
  HANDSHAKE_REQUEST: 5,
  HANDSHAKE_RESPONSE: 6,
  HANDSHAKE_COMPLETE: 7,
  ENC_CHALLENGE_REQUEST: 8,
  ENC_CHALLENGE_RESPONSE: 9,
  FLAG: 10,
  STDERR: 11,
  EXIT_CODE: 12,
} as const;

/** Values of a PayloadType 10 (Flag) payload, one uint32 BE. */
export const PortFlag = { DISCONNECT_TO_PORT: 1, TERMINATE_SESSION: 2, CONNECT_TO_PORT_ERROR: 3 } as const;

export const SYN = 1n;
export const FIN = 2n;

export interface ClientMessage {
  readonly messageType: string;
  readonly schemaVersion: number;
  readonly createdDate: bigint;
  readonly sequenceNumber: bigint;
  readonly flags: bigint;
  /** Lowercase hyphenated UUID (as written, before the half swap). */
  readonly messageId: string;
  readonly payloadType: number;
  readonly payload: Uint8Array;
}

export type ClientMessageInput = Partial<Omit<ClientMessage, 'messageType' | 'payload'>> & {
  readonly messageType: string;
  readonly payload?: Uint8Array;
};

const enc = new TextEncoder();

export function sha256(bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest();
}

/** The 16 wire bytes of `uuid`: its bytes 8..15, then 0..7. */
export function uuidToWire(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a UUID: ${uuid}`);
  const b = Buffer.from(hex, 'hex');
  return Uint8Array.from([...b.subarray(8, 16), ...b.subarray(0, 8)]);
}

/** The UUID the 16 wire bytes carry (halves swapped back), lowercase and hyphenated. */
export function uuidFromWire(wire: Uint8Array): string {
  const b = Buffer.concat([wire.subarray(8, 16), wire.subarray(0, 8)]).toString('hex');
  return `${b.slice(0, 8)}-${b.slice(8, 12)}-${b.slice(12, 16)}-${b.slice(16, 20)}-${b.slice(20)}`;
}

/** One frame. CreatedDate defaults to now, MessageId to a random UUID, SchemaVersion to 1. */
export function encodeClientMessage(m: ClientMessageInput): Uint8Array {
  const payload = m.payload ?? new Uint8Array(0);
  const type = enc.encode(m.messageType);
  if (type.byteLength === 0 || type.byteLength > TYPE_BYTES)
    throw new RangeError(`message type must be 1–${TYPE_BYTES} bytes`);
  const out = new Uint8Array(PAYLOAD_OFFSET + payload.byteLength);
  const v = new DataView(out.buffer);
  v.setUint32(0, HEADER_LENGTH);
  out.fill(0x20, 4, 4 + TYPE_BYTES);
  out.set(type, 4);
  v.setUint32(36, m.schemaVersion ?? 1);
  const created = m.createdDate ?? BigInt(Date.now());
  v.setBigUint64(40, created > 0n ? created : 1n);
  v.setBigInt64(48, m.sequenceNumber ?? 0n);
  v.setBigUint64(56, m.flags ?? 0n);
  out.set(uuidToWire(m.messageId ?? randomUUID()), 64);
  out.set(sha256(payload), 80);
  v.setUint32(112, m.payloadType ?? 0);
  v.setUint32(116, payload.byteLength);
  out.set(payload, PAYLOAD_OFFSET);
  return out;
}

export type DecodeResult = { ok: true; message: ClientMessage } | { ok: false; reason: string };

const dec = new TextDecoder();

/**
 * Decodes and validates one frame as the plugin does: a frame whose header length is not 116, that is shorter
 * than 120 bytes, or whose PayloadLength does not match the bytes after the header is refused (the plugin would
 * panic or take the trailing bytes as payload); then, unless it is a publication message, HeaderLength ≠ 0,
 * MessageType non-empty, CreatedDate ≠ 0 and (for a non-empty payload) the digest, in that order.
 */
export function decodeClientMessage(frame: Uint8Array): DecodeResult {
  if (frame.byteLength < PAYLOAD_OFFSET)
    return { ok: false, reason: `frame of ${frame.byteLength} bytes is shorter than ${PAYLOAD_OFFSET}` };
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const headerLength = v.getUint32(0);
  const messageType = dec
    .decode(frame.subarray(4, 4 + TYPE_BYTES))
    .replace(/^\0+|\0+$/g, '')
    .trim();
  const payloadLength = v.getUint32(116);
  const message: ClientMessage = {
    messageType,
    schemaVersion: v.getUint32(36),
    createdDate: v.getBigUint64(40),
    sequenceNumber: v.getBigInt64(48),
    flags: v.getBigUint64(56),
    messageId: uuidFromWire(frame.subarray(64, 80)),
    payloadType: v.getUint32(112),
    payload: frame.subarray(PAYLOAD_OFFSET),
  };
  if (messageType === MessageType.START_PUBLICATION || messageType === MessageType.PAUSE_PUBLICATION)
    return { ok: true, message };
  if (headerLength === 0) return { ok: false, reason: 'HeaderLength cannot be zero' };
  if (headerLength !== HEADER_LENGTH)
    return { ok: false, reason: `HeaderLength is ${headerLength}, not ${HEADER_LENGTH}` };
  if (payloadLength !== frame.byteLength - PAYLOAD_OFFSET)
    return {
      ok: false,
      reason: `PayloadLength ${payloadLength} does not match the ${frame.byteLength - PAYLOAD_OFFSET} payload bytes`,
    };
  if (messageType === '') return { ok: false, reason: 'MessageType is missing' };
  if (message.createdDate === 0n) return { ok: false, reason: 'CreatedDate is missing' };
  if (payloadLength !== 0 && !sameBytes(sha256(message.payload), frame.subarray(80, 112)))
    return { ok: false, reason: 'payload Hash is not valid' };
  return { ok: true, message };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The JSON of an `acknowledge` for `m` (the receiver matches only on the sequence number). */
export function ackPayload(
  m: Pick<ClientMessage, 'messageType' | 'messageId' | 'sequenceNumber'>,
): Uint8Array {
  return enc.encode(
    `{"AcknowledgedMessageType":${JSON.stringify(m.messageType)},"AcknowledgedMessageId":${JSON.stringify(
      m.messageId,
    )},"AcknowledgedMessageSequenceNumber":${m.sequenceNumber.toString()},"IsSequentialMessage":true}`,
  );
}

/** An `acknowledge` frame for `m` (Flags 3, seq 0, PayloadType 0, as the agent sends them). */
export function encodeAck(
  m: Pick<ClientMessage, 'messageType' | 'messageId' | 'sequenceNumber'>,
): Uint8Array {
  return encodeClientMessage({ messageType: MessageType.ACK, flags: SYN | FIN, payload: ackPayload(m) });
}

/** The sequence number an `acknowledge` payload names, or null when it is not one. */
export function ackedSequence(payload: Uint8Array): bigint | null {
  if (payload.byteLength > 4096) return null;
  try {
    const j = JSON.parse(dec.decode(payload)) as { AcknowledgedMessageSequenceNumber?: unknown };
    const n = j.AcknowledgedMessageSequenceNumber;
    return typeof n === 'number' && Number.isSafeInteger(n) ? BigInt(n) : null;
  } catch {
    return null;
  }
}

/** A `channel_closed` frame; the plugin prints `Output` (when non-empty) and exits. */
export function encodeChannelClosed(sessionId: string, output: string): Uint8Array {
  const messageId = randomUUID();
  const created = Date.now();
  const body = {
    MessageId: messageId,
    CreatedDate: String(created),
    DestinationId: sessionId,
    SessionId: sessionId,
    MessageType: MessageType.CHANNEL_CLOSED,
    SchemaVersion: 1,
    Output: output,
  };
  return encodeClientMessage({
    messageType: MessageType.CHANNEL_CLOSED,
    messageId,
    createdDate: BigInt(created),
    payload: enc.encode(JSON.stringify(body)),
  });
}

/** The payload of a Flag message. */
export function flagPayload(flag: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, flag);
  return out;
}

/** The flag a Flag payload carries, or null when it is not 4 bytes. */
export function flagOf(payload: Uint8Array): number | null {
  if (payload.byteLength !== 4) return null;
  return new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
}
