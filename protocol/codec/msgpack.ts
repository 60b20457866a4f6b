/**
 * The msgpack codec (binary mode), for clients that negotiate the subprotocol `aip.msgpack.v1`.
 *
 * Plain MessagePack maps (no msgpackr records or shared structures), so any MessagePack library can
 * speak it. Null keys are left out on encode; the schemas restore them as null on decode, so both
 * codecs decode to the same typed value.
 */
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
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (PROTO_KEYS.some((k) => buf.indexOf(k) !== -1)) return fail(aipError('FORBIDDEN_KEY', { key: '__proto__', path: 'a map key' }));
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
  if (hasInvalidUtf8(value, bytes)) return fail(aipError('INVALID_UTF8'));
  return { ok: true, value: value as Record<string, unknown> };
}

const PROTO_NAME = Buffer.from('__proto__');
const PROTO_KEYS = [[0xa9], [0xd9, 9], [0xda, 0, 9], [0xdb, 0, 0, 0, 9]].map((h) => Buffer.from([...h, ...PROTO_NAME]));
const REPLACEMENT = Buffer.from('\uFFFD', 'utf8');

/**
 * msgpackr decodes invalid UTF-8 to U+FFFD instead of failing. A decoded value holding more U+FFFD
 * characters than the frame holds encoded U+FFFD sequences therefore had invalid UTF-8. The count only
 * runs when some string contains U+FFFD, which valid traffic almost never does.
 */
function hasInvalidUtf8(value: unknown, bytes: Uint8Array): boolean {
  let decoded = 0;
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === 'string') {
      for (let i = v.indexOf('\uFFFD'); i !== -1; i = v.indexOf('\uFFFD', i + 1)) decoded++;
    } else if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v)) {
      for (const k in v) {
        stack.push(k);
        stack.push((v as Record<string, unknown>)[k]);
      }
    }
  }
  if (decoded === 0) return false;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let encoded = 0;
  for (let i = buf.indexOf(REPLACEMENT); i !== -1; i = buf.indexOf(REPLACEMENT, i + 3)) encoded++;
  return decoded > encoded;
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
