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
import { prescanMsgpack } from './prescan.js';
import { DEFAULT_MAX_CONTAINERS } from './limits.js';

// msgpackr's typings name Node's Buffer, which protocol/ is checked without (it runs in browsers too); its pack
// returns a Uint8Array there and a Buffer (a Uint8Array) in Node, hence the `as Uint8Array` below.
const packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true, variableMapSize: true });
const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: 'number',
  copyBuffers: true,
});

export function decodeMsgpack(
  data: ArrayBuffer | Uint8Array,
  limits: DecodeLimits,
): Decoded<Record<string, unknown>> {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.byteLength > limits.maxFrameBytes)
    return fail(aipError('FRAME_TOO_LARGE', { size: bytes.byteLength, max: limits.maxFrameBytes }));
  if (bytes.byteLength === 0) return fail(aipError('INVALID_MSGPACK', { detail: 'empty frame' }));
  // One token walk before unpack builds anything: nesting depth, `__proto__` strings (msgpackr renames such a
  // key rather than failing; the JSON codec rejects it), UTF-8 of every string (msgpackr does not check it).
  const refused = prescanMsgpack(bytes, limits.maxDepth, limits.maxContainers ?? DEFAULT_MAX_CONTAINERS);
  if (refused) return fail(refused);
  let value: unknown;
  try {
    value = unpackr.unpack(bytes);
  } catch (err) {
    if (err instanceof RangeError && /call stack/i.test(err.message))
      return fail(aipError('TOO_DEEP', { max: limits.maxDepth }));
    return fail(aipError('INVALID_MSGPACK', { detail: err instanceof Error ? err.message : String(err) }));
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array)
    return fail(aipError('NOT_AN_OBJECT', { got: jsonTypeName(value) }));
  // Still needed after the walk: `constructor` keys, and objects with a foreign prototype that msgpackr makes
  // from extensions (a timestamp becomes a Date).
  const bad = checkTree(value, limits.maxDepth);
  if (bad) return fail(bad);
  return { ok: true, value: value as Record<string, unknown> };
}

/** Encodes a wire object, leaving out null and undefined members at the top level. */
export function encodeMsgpack(wire: Record<string, unknown>): Uint8Array {
  const compact: Record<string, unknown> = {};
  for (const key in wire) {
    const v = wire[key];
    if (v !== null && v !== undefined) compact[key] = v;
  }
  return packr.pack(compact) as Uint8Array;
}

/** Encodes any value as plain msgpack (for tests and tools). */
export function packValue(value: unknown): Uint8Array {
  return packr.pack(value) as Uint8Array;
}

function fail(error: AipError): Decoded<never> {
  return { ok: false, error };
}
