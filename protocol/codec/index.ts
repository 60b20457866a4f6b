/**
 * Codec selection and the full decode path: frame → guarded plain object → validated message.
 *
 * No subprotocol means JSON (UFO mode). A client that offers `aip.msgpack.v1` gets msgpack binary frames.
 * In either mode a text frame is parsed as JSON, so the same schemas validate both.
 */
import type { ClientMessage, ClientMessageInput, ServerMessage, ServerMessageInput } from '../messages.js';
import { validateClientMessage, validateServerMessage } from '../validate.js';
import { clientWire, serverWire } from '../wire.js';
import { decodeJson, encodeJson, encodeServerJson } from './json.js';
import { DEFAULT_LIMITS, type Decoded, type DecodeLimits } from './limits.js';
import { decodeMsgpack, encodeMsgpack } from './msgpack.js';

export const SUBPROTOCOL_MSGPACK = 'aip.msgpack.v1';

export type CodecName = 'json' | 'msgpack';

export interface WireCodec {
  readonly name: CodecName;
  /** True when this codec's frames are sent as binary WebSocket frames. */
  readonly binary: boolean;
  /** The WebSocket subprotocol that selects this codec, or null for the default. */
  readonly subprotocol: string | null;
  decode(
    data: string | ArrayBuffer | Uint8Array,
    isBinary: boolean,
    limits?: DecodeLimits,
  ): Decoded<Record<string, unknown>>;
  encode(wire: Record<string, unknown>): string | Uint8Array;
}

export const jsonCodec: WireCodec = {
  name: 'json',
  binary: false,
  subprotocol: null,
  decode: (data, _isBinary, limits = DEFAULT_LIMITS) => decodeJson(data, limits),
  encode: encodeJson,
};

export const msgpackCodec: WireCodec = {
  name: 'msgpack',
  binary: true,
  subprotocol: SUBPROTOCOL_MSGPACK,
  decode: (data, isBinary, limits = DEFAULT_LIMITS) =>
    isBinary && typeof data !== 'string' ? decodeMsgpack(data, limits) : decodeJson(data, limits),
  encode: encodeMsgpack,
};

export const CODECS: Readonly<Record<CodecName, WireCodec>> = { json: jsonCodec, msgpack: msgpackCodec };

/** Picks the codec from a `Sec-WebSocket-Protocol` offer (a comma-separated list); JSON when none matches. */
export function negotiateCodec(offer: string | undefined | null): WireCodec {
  if (!offer) return jsonCodec;
  for (const p of offer.split(',')) if (p.trim() === SUBPROTOCOL_MSGPACK) return msgpackCodec;
  return jsonCodec;
}

export function decodeClientMessage(
  codec: WireCodec,
  data: string | ArrayBuffer | Uint8Array,
  isBinary: boolean,
  limits: DecodeLimits = DEFAULT_LIMITS,
): Decoded<ClientMessage> {
  const raw = codec.decode(data, isBinary, limits);
  return raw.ok ? validateClientMessage(raw.value) : raw;
}

export function decodeServerMessage(
  codec: WireCodec,
  data: string | ArrayBuffer | Uint8Array,
  isBinary: boolean,
  limits: DecodeLimits = DEFAULT_LIMITS,
): Decoded<ServerMessage> {
  const raw = codec.decode(data, isBinary, limits);
  return raw.ok ? validateServerMessage(raw.value) : raw;
}

export function encodeServerMessage(codec: WireCodec, msg: ServerMessageInput): string | Uint8Array {
  // The same text as jsonCodec.encode(serverWire(msg)), without the intermediate object (see encodeServerJson).
  if (codec === jsonCodec) return encodeServerJson(msg);
  return codec.encode(serverWire(msg));
}

export function encodeClientMessage(codec: WireCodec, msg: ClientMessageInput): string | Uint8Array {
  return codec.encode(clientWire(msg));
}

export { DEFAULT_LIMITS, type Decoded, type DecodeLimits };
