/**
 * The JSON codec (UFO mode, no subprotocol).
 *
 * Decode accepts text frames, and binary frames holding UTF-8 JSON (some AIP transports send those).
 * Encode produces UFO's form: compact, every declared key present (null when absent), in declaration order.
 */
import { aipError, type AipError } from '../errors.js';
import { checkTree, jsonTypeName } from './guards.js';
import type { Decoded, DecodeLimits } from './limits.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bytes or text of one frame, to a checked plain object (not yet schema-validated). */
export function decodeJson(
  data: string | ArrayBuffer | Uint8Array,
  limits: DecodeLimits,
): Decoded<Record<string, unknown>> {
  let text: string;
  if (typeof data === 'string') {
    // A JS string from a text frame; its UTF-8 length is at least its length in UTF-16 units and at most
    // three times it, so the exact byte count is needed only in between.
    if (data.length > limits.maxFrameBytes) return fail(aipError('FRAME_TOO_LARGE', { size: data.length, max: limits.maxFrameBytes }));
    if (data.length * 3 > limits.maxFrameBytes) {
      const size = Buffer.byteLength(data, 'utf8');
      if (size > limits.maxFrameBytes) return fail(aipError('FRAME_TOO_LARGE', { size, max: limits.maxFrameBytes }));
    }
    text = data;
  } else {
    if (data.byteLength > limits.maxFrameBytes)
      return fail(aipError('FRAME_TOO_LARGE', { size: data.byteLength, max: limits.maxFrameBytes }));
    try {
      text = utf8.decode(data);
    } catch {
      return fail(aipError('INVALID_UTF8'));
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
  const bad = checkTree(value, limits.maxDepth);
  if (bad) return fail(bad);
  return { ok: true, value: value as Record<string, unknown> };
}

/** Encodes an already-ordered wire object as compact JSON text. */
export function encodeJson(wire: object): string {
  return JSON.stringify(wire);
}

function fail(error: AipError): Decoded<never> {
  return { ok: false, error };
}
