/**
 * The msgpack codec (binary mode), for clients that negotiate the subprotocol `aip.msgpack.v1`.
 *
 * Plain MessagePack maps (no msgpackr records or shared structures), so any MessagePack library can
 * speak it. Null keys are left out on encode; the schemas restore them as null on decode, so both
 * codecs decode to the same typed value.
 */
import { isUtf8 } from 'node:buffer';
import { Packr, Unpackr } from 'msgpackr';
import { aipError, type AipError } from '../errors.js';
import { checkTree, jsonTypeName } from './guards.js';
import type { Decoded, DecodeLimits } from './limits.js';

const packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number', copyBuffers: true });

export function decodeMsgpack(data: ArrayBuffer | Uint8Array, limits: DecodeLimits): Decoded<Record<string, unknown>> {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.byteLength > limits.maxFrameBytes)
    return fail(aipError('FRAME_TOO_LARGE', { size: bytes.byteLength, max: limits.maxFrameBytes }));
  if (bytes.byteLength === 0) return fail(aipError('INVALID_MSGPACK', { detail: 'empty frame' }));
  // msgpackr renames a `__proto__` key rather than failing; reject it outright, as the JSON codec does,
  // whichever string header (fixstr, str8, str16, str32) encodes it.
  if (hasProtoString(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)))
    return fail(aipError('FORBIDDEN_KEY', { key: '__proto__', path: 'a map key' }));
  let value: unknown;
  try {
    value = unpackr.unpack(bytes);
  } catch (err) {
    if (err instanceof RangeError && /call stack/i.test(err.message)) return fail(aipError('TOO_DEEP', { max: limits.maxDepth }));
    return fail(aipError('INVALID_MSGPACK', { detail: err instanceof Error ? err.message : String(err) }));
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array)
    return fail(aipError('NOT_AN_OBJECT', { got: jsonTypeName(value) }));
  const bad = checkTree(value, limits.maxDepth);
  if (bad) return fail(bad);
  if (hasInvalidUtf8(bytes)) return fail(aipError('INVALID_UTF8'));
  return { ok: true, value: value as Record<string, unknown> };
}

const PROTO_NAME = Buffer.from('__proto__');

/** True if the frame holds the string `__proto__` under any msgpack string header (fixstr, str8/16/32); one scan. */
function hasProtoString(buf: Buffer): boolean {
  for (let i = buf.indexOf(PROTO_NAME); i !== -1; i = buf.indexOf(PROTO_NAME, i + 1)) {
    if (buf[i - 1] === 0xa9) return true;
    if (i >= 2 && buf[i - 2] === 0xd9 && buf[i - 1] === 9) return true;
    if (i >= 3 && buf[i - 3] === 0xda && buf[i - 2] === 0 && buf[i - 1] === 9) return true;
    if (i >= 5 && buf[i - 5] === 0xdb && buf[i - 4] === 0 && buf[i - 3] === 0 && buf[i - 2] === 0 && buf[i - 1] === 9) return true;
  }
  return false;
}

/** Big-endian unsigned integer of `n` bytes after position `i`; -1 when the frame ends early. */
function uint(b: Uint8Array, i: number, n: number): number {
  if (i + n >= b.length) return -1;
  let v = 0;
  for (let k = 1; k <= n; k++) v = v * 256 + b[i + k]!;
  return v;
}

/** Bytes to skip for a non-string token at `i` (containers: just their header); -1 for 0xc1 or a truncated frame. */
function skip(b: Uint8Array, i: number): number {
  const t = b[i]!;
  if (t <= 0x9f || t >= 0xe0) return 1;
  switch (t) {
    case 0xc0: case 0xc2: case 0xc3: return 1;
    case 0xcc: case 0xd0: return 2;
    case 0xcd: case 0xd1: case 0xdc: case 0xde: case 0xd4: return 3;
    case 0xd5: return 4;
    case 0xca: case 0xce: case 0xd2: case 0xdd: case 0xdf: return 5;
    case 0xd6: return 6;
    case 0xcb: case 0xcf: case 0xd3: return 9;
    case 0xd7: return 10;
    case 0xd8: return 18;
    case 0xc4: return payload(2, uint(b, i, 1));
    case 0xc5: return payload(3, uint(b, i, 2));
    case 0xc6: return payload(5, uint(b, i, 4));
    case 0xc7: return payload(3, uint(b, i, 1));
    case 0xc8: return payload(4, uint(b, i, 2));
    case 0xc9: return payload(6, uint(b, i, 4));
    default: return -1;
  }
}
const payload = (header: number, len: number): number => (len < 0 ? -1 : header + len);

/** Strings up to this many bytes are checked in JS when they are ASCII; longer ones go to the native validator. */
const SHORT_STRING = 256;

/**
 * msgpackr does not fail on invalid UTF-8 (it substitutes or mis-decodes), so every string payload of the
 * frame is checked. A linear token scan suffices: containers are only headers, and bin/ext payloads are
 * skipped. A malformed or truncated frame stops the scan; unpack then rejects it.
 * Short ASCII strings (keys, ids, enum values: nearly every string of an AIP frame) are accepted by a byte loop;
 * any other string is given to the native validator (`buffer.isUtf8`).
 */
function hasInvalidUtf8(bytes: Uint8Array): boolean {
  const end = bytes.length;
  for (let i = 0; i < end; ) {
    const t = bytes[i]!;
    let header: number;
    let len: number;
    if (t >= 0xa0 && t <= 0xbf) {
      header = 1;
      len = t & 0x1f;
    } else if (t === 0xd9) {
      header = 2;
      len = uint(bytes, i, 1);
    } else if (t === 0xda) {
      header = 3;
      len = uint(bytes, i, 2);
    } else if (t === 0xdb) {
      header = 5;
      len = uint(bytes, i, 4);
    } else {
      const n = skip(bytes, i);
      if (n < 0) return false;
      i += n;
      continue;
    }
    const start = i + header;
    const stop = start + len;
    if (len < 0 || stop > end) return false;
    if (len > 0 && !validString(bytes, start, stop)) return true;
    i = stop;
  }
  return false;
}

function validString(bytes: Uint8Array, start: number, stop: number): boolean {
  if (stop - start <= SHORT_STRING) {
    let k = start;
    while (k < stop && bytes[k]! < 0x80) k++;
    if (k === stop) return true;
  }
  return isUtf8(bytes.subarray(start, stop));
}

/** Encodes a wire object, leaving out null and undefined members at the top level. */
export function encodeMsgpack(wire: Record<string, unknown>): Uint8Array {
  const compact: Record<string, unknown> = {};
  for (const key in wire) {
    const v = wire[key];
    if (v !== null && v !== undefined) compact[key] = v;
  }
  return packr.pack(compact);
}

/** Encodes any value as plain msgpack (for tests and tools). */
export function packValue(value: unknown): Uint8Array {
  return packr.pack(value);
}

function fail(error: AipError): Decoded<never> {
  return { ok: false, error };
}
