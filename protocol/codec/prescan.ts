/**
 * Checks that run on a frame's text or bytes before it is parsed, so that a hostile frame is refused before the
 * parser builds anything from it. They allocate nothing that grows with the frame.
 *
 * - JSON: nesting depth (`jsonTooDeep` on text, `jsonBytesTooDeep` on UTF-8 bytes). The text need not be valid
 *   JSON: where it is not, JSON.parse stops at the first error, and everything before that point was scanned.
 * - msgpack: one token walk (`prescanMsgpack`) for nesting depth, `__proto__` strings and UTF-8 validity of every
 *   string, with a fixed stack of `maxDepth` container counts.
 * - UTF-8 helpers without Node's Buffer: `utf8ByteLength` and `isUtf8Range`.
 *
 * Depth counts as in `checkTree`: the root object is depth 1, and an empty object or array counts too.
 */
import { aipError, type AipError } from '../errors.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
/** Inside a string, this many characters are checked in a loop before a native `indexOf` is cheaper. */
const SHORT_RUN = 16;

/** What a JSON shape scan found: nesting deeper than the limit, more containers than the limit, or neither. */
export type JsonShape = 'deep' | 'wide' | null;

/**
 * Whether the JSON text nests objects and arrays deeper than `maxDepth` or holds more than `maxContainers` of
 * them (a frame of millions of empty arrays costs tens of times its size once parsed).
 */
export function jsonShape(text: string, maxDepth: number, maxContainers: number): JsonShape {
  return fewOpeners(text, Math.min(maxDepth, maxContainers))
    ? null
    : scanTextDepth(text, maxDepth, maxContainers);
}

/** True when the JSON text nests objects and arrays deeper than `maxDepth`. */
export function jsonTooDeep(text: string, maxDepth: number): boolean {
  return jsonShape(text, maxDepth, Number.MAX_SAFE_INTEGER) === 'deep';
}

/**
 * The same on UTF-8 bytes (multi-byte sequences hold no ASCII byte). `text`, the same frame already decoded, makes
 * the bracket count cheaper; without it (a large frame, scanned before it is decoded) the bytes are counted.
 * A full scan always runs on the bytes: that loop is about twice as fast as one over a string.
 */
export function jsonBytesShape(
  bytes: Uint8Array,
  maxDepth: number,
  maxContainers: number,
  text?: string,
): JsonShape {
  const max = Math.min(maxDepth, maxContainers);
  const few = text === undefined ? fewOpenerBytes(bytes, max) : fewOpeners(text, max);
  return few ? null : scanBytesDepth(bytes, maxDepth, maxContainers);
}

export function jsonBytesTooDeep(bytes: Uint8Array, maxDepth: number, text?: string): boolean {
  return jsonBytesShape(bytes, maxDepth, Number.MAX_SAFE_INTEGER, text) === 'deep';
}

/**
 * True when the text holds at most `max` `{` and `[` in all, strings included: then it can not nest deeper.
 * This settles a typical frame with a few native `indexOf` calls and no per-character work.
 */
function fewOpeners(text: string, max: number): boolean {
  let n = 0;
  for (let i = text.indexOf('{'); i !== -1; i = text.indexOf('{', i + 1)) if (++n > max) return false;
  for (let i = text.indexOf('['); i !== -1; i = text.indexOf('[', i + 1)) if (++n > max) return false;
  return true;
}

function fewOpenerBytes(bytes: Uint8Array, max: number): boolean {
  let n = 0;
  for (let i = bytes.indexOf(OPEN_BRACE); i !== -1; i = bytes.indexOf(OPEN_BRACE, i + 1))
    if (++n > max) return false;
  for (let i = bytes.indexOf(OPEN_BRACKET); i !== -1; i = bytes.indexOf(OPEN_BRACKET, i + 1))
    if (++n > max) return false;
  return true;
}

/** One pass: strings are skipped, `{`/`[` open and `}`/`]` close; a close at depth 0 ends a valid prefix. */
function scanTextDepth(text: string, maxDepth: number, maxContainers: number): JsonShape {
  const n = text.length;
  let depth = 0;
  let containers = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = textStringEnd(text, i + 1);
      if (i < 0) return null;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return 'deep';
      if (++containers > maxContainers) return 'wide';
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (--depth < 0) return null;
    }
  }
  return null;
}

/** Index of the quote that closes the string whose first character is at `start`; -1 if it is not closed. */
function textStringEnd(text: string, start: number): number {
  let i = start;
  for (const near = Math.min(text.length, start + SHORT_RUN); i < near; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) return i;
    if (c === BACKSLASH) i++;
  }
  // A quote is escaped exactly when an odd run of backslashes precedes it.
  for (;;) {
    const q = text.indexOf('"', i);
    if (q === -1) return -1;
    let k = q - 1;
    while (k >= start && text.charCodeAt(k) === BACKSLASH) k--;
    if (((q - 1 - k) & 1) === 0) return q;
    i = q + 1;
  }
}

function scanBytesDepth(bytes: Uint8Array, maxDepth: number, maxContainers: number): JsonShape {
  const n = bytes.length;
  let depth = 0;
  let containers = 0;
  for (let i = 0; i < n; i++) {
    const c = bytes[i]!;
    if (c === QUOTE) {
      i = bytesStringEnd(bytes, i + 1);
      if (i < 0) return null;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return 'deep';
      if (++containers > maxContainers) return 'wide';
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (--depth < 0) return null;
    }
  }
  return null;
}

function bytesStringEnd(bytes: Uint8Array, start: number): number {
  let i = start;
  for (const near = Math.min(bytes.length, start + SHORT_RUN); i < near; i++) {
    const c = bytes[i]!;
    if (c === QUOTE) return i;
    if (c === BACKSLASH) i++;
  }
  for (;;) {
    const q = bytes.indexOf(QUOTE, i);
    if (q === -1) return -1;
    let k = q - 1;
    while (k >= start && bytes[k] === BACKSLASH) k--;
    if (((q - 1 - k) & 1) === 0) return q;
    i = q + 1;
  }
}

/**
 * Remaining child tokens of each open msgpack container (a map of n entries has 2n, an array of n has n).
 * Grown to the largest `maxDepth` seen and reused: decoding is synchronous, so one walk runs at a time.
 */
let pending = new Float64Array(128);

/** Returned by `scalarSize` for a token that runs past the end of the frame. */
const TRUNCATED = -1;
/** Returned by `scalarSize` for an extension that msgpackr expands by reading further tokens (see `extSize`). */
const RESTRUCTURING = -2;

/**
 * One walk over the tokens of a msgpack frame, before `unpack`: FORBIDDEN_KEY for a `__proto__` string (msgpackr
 * would rename such a key rather than fail), INVALID_UTF8 for a string that is not UTF-8 (msgpackr would substitute
 * or mis-decode), TOO_DEEP for containers nested deeper than `maxDepth`, and INVALID_MSGPACK for msgpackr's own
 * extensions that read the tokens after them as their content (records, bundled strings, Error, Set, RegExp,
 * structured-clone ids), which would make unpack's structure differ from this walk's.
 *
 * Null means unpack may run. A truncated frame also gets null: unpack reads the same tokens and rejects it at the
 * same point. Bytes after the first top-level value are refused (INVALID_MSGPACK), and so are bin values
 * (UNSUPPORTED_VALUE): AIP carries JSON values only.
 */
export function prescanMsgpack(
  b: Uint8Array,
  maxDepth: number,
  maxContainers = Number.MAX_SAFE_INTEGER,
): AipError | null {
  if (pending.length < maxDepth) pending = new Float64Array(maxDepth);
  const stack = pending;
  const end = b.length;
  let depth = 0;
  let containers = 0;
  let i = 0;
  while (i < end) {
    const t = b[i]!;
    let children = -1;
    if (t <= 0x7f || t >= 0xe0) {
      i += 1; // fixint
    } else if (t <= 0x9f) {
      children = t <= 0x8f ? (t & 0x0f) * 2 : t & 0x0f; // fixmap, fixarray
      i += 1;
    } else if (t <= 0xbf || (t >= 0xd9 && t <= 0xdb)) {
      const header = t <= 0xbf ? 1 : t === 0xd9 ? 2 : t === 0xda ? 3 : 5; // fixstr, str8, str16, str32
      const len = header === 1 ? t & 0x1f : uint(b, i, header - 1);
      const start = i + header;
      const stop = start + len;
      if (len < 0 || stop > end) return null;
      if (len === 9 && isProto(b, start))
        return aipError('FORBIDDEN_KEY', { key: '__proto__', path: 'a map key' });
      if (len > 0 && !isUtf8Range(b, start, stop)) return aipError('INVALID_UTF8');
      i = stop;
    } else if (t >= 0xdc && t <= 0xdf) {
      const header = t & 1 ? 5 : 3; // array16, array32, map16, map32
      const count = uint(b, i, header - 1);
      if (count < 0) return null;
      children = t >= 0xde ? count * 2 : count;
      i += header;
    } else {
      // bin: bytes are not a JSON value (msgpackr would hand them on as a Uint8Array, and each later JSON
      // measure or encode of it costs ~12 characters a byte)
      if (t >= 0xc4 && t <= 0xc6)
        return aipError('UNSUPPORTED_VALUE', { what: 'a binary (bin) value', path: `depth ${depth}` });
      const size = scalarSize(b, i);
      if (size === TRUNCATED) return null;
      if (size === RESTRUCTURING)
        return aipError('INVALID_MSGPACK', {
          detail: `extension type 0x${b[extTypeAt(b, i)]!.toString(16)} is not supported`,
        });
      i += size;
    }
    if (children >= 0 && depth >= maxDepth) return aipError('TOO_DEEP', { max: maxDepth });
    if (children >= 0 && ++containers > maxContainers)
      return aipError('TOO_MANY_CONTAINERS', { max: maxContainers });
    if (children > 0) {
      stack[depth++] = children;
      continue;
    }
    // A complete token: count it against its container, and close every container it completes.
    while (depth > 0 && (stack[depth - 1] = stack[depth - 1]! - 1) === 0) depth--;
    // The message is whole: anything after it is refused here, before msgpackr, whose error for it writes the
    // whole decoded value out as JSON (seconds and hundreds of MB for a few MB of bytes).
    if (depth === 0)
      return i === end ? null : aipError('INVALID_MSGPACK', { detail: `${end - i} bytes after the message` });
  }
  return null;
}

/** Big-endian unsigned integer of `n` bytes after position `i`; -1 when the frame ends early. */
function uint(b: Uint8Array, i: number, n: number): number {
  if (i + n >= b.length) return -1;
  let v = 0;
  for (let k = 1; k <= n; k++) v = v * 256 + b[i + k]!;
  return v;
}

const PROTO = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f]; // __proto__

function isProto(b: Uint8Array, start: number): boolean {
  for (let k = 0; k < 9; k++) if (b[start + k] !== PROTO[k]) return false;
  return true;
}

/** Bytes of a token that is neither a string nor a container (nil, booleans, numbers, bin, ext). */
function scalarSize(b: Uint8Array, i: number): number {
  switch (b[i]) {
    case 0xc0:
    case 0xc1:
    case 0xc2:
    case 0xc3:
      return 1; // msgpackr reads 0xc1 as a marker object
    case 0xcc:
    case 0xd0:
      return 2;
    case 0xcd:
    case 0xd1:
      return 3;
    case 0xca:
    case 0xce:
    case 0xd2:
      return 5;
    case 0xcb:
    case 0xcf:
    case 0xd3:
      return 9;
    case 0xc4:
      return payload(2, uint(b, i, 1));
    case 0xc5:
      return payload(3, uint(b, i, 2));
    case 0xc6:
      return payload(5, uint(b, i, 4));
    case 0xd4:
      return extSize(b, i, 3);
    case 0xd5:
      return extSize(b, i, 4);
    case 0xd6:
      return extSize(b, i, 6);
    case 0xd7:
      return extSize(b, i, 10);
    case 0xd8:
      return extSize(b, i, 18);
    case 0xc7:
      return extSize(b, i, payload(3, uint(b, i, 1)));
    case 0xc8:
      return extSize(b, i, payload(4, uint(b, i, 2)));
    default:
      return extSize(b, i, payload(6, uint(b, i, 4))); // 0xc9
  }
}

const payload = (header: number, len: number): number => (len < 0 ? TRUNCATED : header + len);

/** Where the type byte of the ext token at `i` is: after the header byte and its length field, if any. */
function extTypeAt(b: Uint8Array, i: number): number {
  const t = b[i]!;
  return t >= 0xd4 ? i + 1 : t === 0xc7 ? i + 2 : t === 0xc8 ? i + 3 : i + 5;
}

/**
 * An ext token's size, or RESTRUCTURING for the types msgpackr expands with the tokens that follow (0x62 bundled
 * strings, 0x65 Error, 0x69 structured-clone id, 0x72 record definition, 0x73 Set, 0x78 RegExp). The others are
 * leaves (0x00 undefined, 0x70 reference, 0x74 typed array, 0xff timestamp; unknown types fail unpack). 0x42 bigint is
 * refused with them: a BigInt would pass validation and then make every JSON encode of the message throw.
 * AIP needs no extension; the other leaves are left to unpack and `checkTree` as before.
 */
function extSize(b: Uint8Array, i: number, size: number): number {
  const at = extTypeAt(b, i);
  if (size < 0 || at >= b.length) return TRUNCATED;
  switch (b[at]) {
    case 0x42: // a BigInt, which no JSON encoder can write back out
    case 0x62:
    case 0x65:
    case 0x69:
    case 0x72:
    case 0x73:
    case 0x78:
      return RESTRUCTURING;
    default:
      return size;
  }
}

const encoder = new TextEncoder();
/** UTF-16 units encoded per `encodeInto` call; three bytes per unit is the most UTF-8 needs. */
const ENCODE_CHUNK = 16 * 1024;
let encodeScratch: Uint8Array | null = null;

/** The UTF-8 length of `text` (a lone surrogate counts as the 3 bytes of U+FFFD), in native-speed chunks. */
export function utf8ByteLength(text: string): number {
  encodeScratch ??= new Uint8Array(ENCODE_CHUNK * 3);
  let bytes = 0;
  for (let p = 0; p < text.length;) {
    let e = Math.min(text.length, p + ENCODE_CHUNK);
    if (e < text.length && (text.charCodeAt(e - 1) & 0xfc00) === 0xd800) e--; // keep a surrogate pair together
    bytes += encoder.encodeInto(text.slice(p, e), encodeScratch).written;
    p = e;
  }
  return bytes;
}

const fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Longer non-ASCII strings are validated in slices of this many bytes, so no string of the whole is built. */
const DECODE_CHUNK = 64 * 1024;
/** From this length on, ASCII is checked four bytes at a time. */
const WORDS_FROM = 64;

/** True when bytes [start, stop) are valid UTF-8: a loop for ASCII, the host's fatal TextDecoder otherwise. */
export function isUtf8Range(b: Uint8Array, start: number, stop: number): boolean {
  if (isAscii(b, start, stop)) return true;
  try {
    if (stop - start <= DECODE_CHUNK) {
      fatal.decode(b.subarray(start, stop));
      return true;
    }
    const streaming = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    for (let p = start; p < stop; p += DECODE_CHUNK) {
      streaming.decode(b.subarray(p, Math.min(stop, p + DECODE_CHUNK)), { stream: true });
    }
    streaming.decode();
    return true;
  } catch {
    return false;
  }
}

function isAscii(b: Uint8Array, start: number, stop: number): boolean {
  let k = start;
  if (stop - start >= WORDS_FROM) {
    for (const aligned = start + ((4 - ((b.byteOffset + start) & 3)) & 3); k < aligned; k++)
      if (b[k]! >= 0x80) return false;
    const words = new Uint32Array(b.buffer, b.byteOffset + k, (stop - k) >>> 2);
    let any = 0;
    for (let w = 0; w < words.length; w++) any |= words[w]!;
    if ((any & 0x80808080) !== 0) return false;
    k += words.length * 4;
  }
  for (; k < stop; k++) if (b[k]! >= 0x80) return false;
  return true;
}
