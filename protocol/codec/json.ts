/**
 * The JSON codec (UFO mode, no subprotocol).
 *
 * Decode accepts text frames, and binary frames holding UTF-8 JSON (some AIP transports send those).
 * Encode produces UFO's form: compact, every declared key present (null when absent), in declaration order.
 */
import { aipError, type AipError } from '../errors.js';
import type { ServerMessageInput } from '../messages.js';
import { serverWire } from '../wire.js';
import { checkTree, jsonTypeName } from './guards.js';
import type { Decoded, DecodeLimits } from './limits.js';
import { jsonBytesShape, jsonShape, utf8ByteLength, type JsonShape } from './prescan.js';
import { DEFAULT_MAX_CONTAINERS } from './limits.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Byte frames up to this size are decoded to text before the depth pre-scan (the text is needed anyway). */
const SMALL_FRAME_BYTES = 64 * 1024;

/** Bytes or text of one frame, to a checked plain object (not yet schema-validated). */
export function decodeJson(
  data: string | ArrayBuffer | Uint8Array,
  limits: DecodeLimits,
): Decoded<Record<string, unknown>> {
  let text: string;
  if (typeof data === 'string') {
    // A JS string from a text frame; its UTF-8 length is at least its length in UTF-16 units and at most
    // three times it, so the exact byte count is needed only in between.
    if (data.length > limits.maxFrameBytes)
      return fail(aipError('FRAME_TOO_LARGE', { size: data.length, max: limits.maxFrameBytes }));
    if (data.length * 3 > limits.maxFrameBytes) {
      const size = utf8ByteLength(data);
      if (size > limits.maxFrameBytes)
        return fail(aipError('FRAME_TOO_LARGE', { size, max: limits.maxFrameBytes }));
    }
    text = data;
    const shape = jsonShape(text, limits.maxDepth, limits.maxContainers ?? DEFAULT_MAX_CONTAINERS);
    if (shape) return fail(shapeError(shape, limits));
  } else {
    if (data.byteLength > limits.maxFrameBytes)
      return fail(aipError('FRAME_TOO_LARGE', { size: data.byteLength, max: limits.maxFrameBytes }));
    // A large frame is scanned before its text exists; a small one after, as its text makes counting brackets cheap.
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    const large = bytes.byteLength > SMALL_FRAME_BYTES;
    const maxContainers = limits.maxContainers ?? DEFAULT_MAX_CONTAINERS;
    if (large) {
      const shape = jsonBytesShape(bytes, limits.maxDepth, maxContainers);
      if (shape) return fail(shapeError(shape, limits));
    }
    try {
      text = utf8.decode(bytes);
    } catch {
      return fail(aipError('INVALID_UTF8'));
    }
    if (!large) {
      const shape = jsonBytesShape(bytes, limits.maxDepth, maxContainers, text);
      if (shape) return fail(shapeError(shape, limits));
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return fail(aipError('INVALID_JSON', { detail: err instanceof Error ? err.message : String(err) }));
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return fail(aipError('NOT_AN_OBJECT', { got: jsonTypeName(value) }));
  // The depth was checked before parsing; `__proto__` and `constructor` keys can only be judged on the parsed tree
  // (a key may be spelled with escapes).
  const bad = checkTree(value, limits.maxDepth);
  if (bad) return fail(bad);
  return { ok: true, value: value as Record<string, unknown> };
}

/** Encodes an already-ordered wire object as compact JSON text. */
export function encodeJson(wire: object): string {
  return JSON.stringify(wire);
}

/**
 * `JSON.stringify(serverWire(msg))`, byte for byte, built by concatenation: the keys are constant, and strings,
 * numbers, booleans and nulls are written directly; objects and arrays (`parameters`, `result`, `messages`)
 * go to JSON.stringify. A value this does not model exactly (a `toJSON` method, which JSON.stringify would
 * call with the key; a function, symbol or bigint) sends the whole message down the generic path.
 */
export function encodeServerJson(msg: ServerMessageInput): string {
  const actions = msg.actions;
  let out = '{"type":';
  if (
    !put(msg.type) ||
    !put2(',"status":', msg.status) ||
    !put2(',"user_request":', msg.user_request) ||
    !put2(',"agent_name":', msg.agent_name) ||
    !put2(',"process_name":', msg.process_name) ||
    !put2(',"root_name":', msg.root_name)
  )
    return generic(msg);
  if (Array.isArray(actions)) {
    out += ',"actions":[';
    for (let i = 0; i < actions.length; i++) {
      const c = actions[i];
      if (
        c === null ||
        typeof c !== 'object' ||
        !put2(i === 0 ? '{"tool_name":' : ',{"tool_name":', c.tool_name) ||
        !put2(',"parameters":', c.parameters) ||
        !put2(',"tool_type":', c.tool_type) ||
        !put2(',"call_id":', c.call_id)
      )
        return generic(msg);
      out += '}';
    }
    out += ']';
  } else if (!put2(',"actions":', actions)) return generic(msg);
  if (
    !put2(',"messages":', msg.messages) ||
    !put2(',"error":', msg.error) ||
    !put2(',"session_id":', msg.session_id) ||
    !put2(',"task_name":', msg.task_name) ||
    !put2(',"timestamp":', msg.timestamp) ||
    !put2(',"response_id":', msg.response_id) ||
    !put2(',"result":', msg.result)
  )
    return generic(msg);
  return out + '}';

  function put2(key: string, v: unknown): boolean {
    out += key;
    return put(v);
  }
  function put(v: unknown): boolean {
    const piece = jsonValue(v);
    if (piece === null) return false;
    out += piece;
    return true;
  }
}

function generic(msg: ServerMessageInput): string {
  return JSON.stringify(serverWire(msg));
}

/** Characters JSON.stringify escapes in a string: `"`, `\`, controls, and lone surrogates. */
// eslint-disable-next-line no-control-regex -- the control characters are exactly what JSON escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** The JSON text of one property value, or null when only the generic path reproduces JSON.stringify. */
function jsonValue(v: unknown): string | null {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'string':
      return NEEDS_ESCAPE.test(v) ? JSON.stringify(v) : `"${v}"`;
    case 'number':
    case 'boolean':
      return JSON.stringify(v);
    case 'object':
      return typeof (v as { toJSON?: unknown }).toJSON === 'function' ? null : JSON.stringify(v);
    default:
      return null;
  }
}

function shapeError(shape: NonNullable<JsonShape>, limits: DecodeLimits): AipError {
  return shape === 'deep'
    ? aipError('TOO_DEEP', { max: limits.maxDepth })
    : aipError('TOO_MANY_CONTAINERS', { max: limits.maxContainers ?? DEFAULT_MAX_CONTAINERS });
}

function fail(error: AipError): Decoded<never> {
  return { ok: false, error };
}
