/**
 * The seeded frame generator shared by the decoder fuzz test (test/protocol/fuzz.test.ts) and the fuzzing
 * harness (bench/fuzz.ts): mutated valid AIP frames (truncated, bit-flipped, spliced, injected keys), deep
 * nesting, huge strings, prototype keys, random bytes and random JSON values, as JSON text or msgpack bytes.
 * `makeGen` is the test's mix, unchanged so its seeds keep producing the same frames; `makeHostileGen` adds the
 * harness's extra kinds: invalid UTF-8 in strings, nesting far past the depth limit, and msgpack extensions.
 */
import { packValue, type DecodeLimits } from '../../protocol/index.js';
import { ALL_FRAMES } from '../fixtures/aip-frames.js';

/** Smaller than the defaults so the size and depth guards fire often without big allocations. */
export const FUZZ_LIMITS: DecodeLimits = { maxFrameBytes: 16 * 1024, maxDepth: 64 };

/** mulberry32: small, fast, seedable. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A text frame (JSON) or a binary frame (msgpack, or UTF-8 JSON). */
export type Frame = string | Uint8Array;

const SEEDS_JSON = ALL_FRAMES.map((f) => f.raw);
const SEEDS_BYTES = ALL_FRAMES.flatMap((f) => [
  new TextEncoder().encode(f.raw),
  packValue(JSON.parse(f.raw)),
]);
const FIELDS = [
  'type',
  'status',
  'client_type',
  'client_id',
  'session_id',
  'task_name',
  'target_id',
  'request',
  'metadata',
  'action_results',
  'actions',
  'result',
  'error',
  'response_id',
  'prev_response_id',
  'timestamp',
  'tool_name',
  'tool_type',
  'parameters',
  'call_id',
  'namespace',
  'messages',
  '__proto__',
  'constructor',
  'prototype',
];
const WORDS = [
  'heartbeat',
  'register',
  'task',
  'command',
  'command_results',
  'task_end',
  'error',
  'ok',
  'continue',
  'completed',
  'failed',
  'device',
  'constellation',
  'success',
  'failure',
  'skipped',
  'none',
  'action',
  'data_collection',
  'HEARTBEAT',
  '',
  '\uFFFD',
  'é✓𝄞',
  '\u0000',
  '\uD800',
];
const INTERESTING = [
  0x00, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc3, 0xd9, 0xdc, 0xde, 0xdf, 0xed, 0xf4, 0xf8, 0xff, 0x22, 0x5b, 0x7b,
  0x5c,
];

/** The decoder fuzz test's mix of frames; each call of the returned function makes one. */
export function makeGen(rand: () => number): () => Frame {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

  function randomValue(depth: number): unknown {
    const r = int(depth > 3 ? 6 : 9);
    switch (r) {
      case 0:
        return null;
      case 1:
        return rand() < 0.5;
      case 2:
        return rand() < 0.5 ? int(1000) - 500 : (rand() - 0.5) * 1e6;
      case 3:
      case 4:
        return pick(WORDS);
      case 5:
        return String.fromCharCode(...Array.from({ length: int(12) }, () => int(0x3000)));
      case 6:
        return Array.from({ length: int(4) }, () => randomValue(depth + 1));
      default: {
        const o: Record<string, unknown> = {};
        for (let i = int(4); i > 0; i--)
          Object.defineProperty(o, pick(FIELDS), {
            value: randomValue(depth + 1),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        return o;
      }
    }
  }

  /** A mostly-plausible envelope: right field names, random (often right) values. */
  function randomEnvelope(): Record<string, unknown> {
    const o: Record<string, unknown> = {};
    for (const k of FIELDS.slice(0, 17)) {
      if (k !== 'type' && k !== 'status' && rand() < 0.75) continue;
      o[k] = k === 'type' || k === 'status' || rand() < 0.5 ? pick(WORDS) : randomValue(2);
    }
    return o;
  }

  function asFrame(v: unknown): Frame {
    if (rand() < 0.5) {
      // Random JSON values may hold lone surrogates; JSON.stringify escapes them, which is valid JSON.
      return JSON.stringify(v) ?? 'undefined';
    }
    return packValue(v);
  }

  function mutateBytes(src: Uint8Array): Uint8Array {
    const b = Uint8Array.from(src);
    const kind = int(5);
    if (kind === 0) return b.subarray(0, int(b.length + 1)); // truncated
    if (kind === 1) {
      for (let i = int(4) + 1; i > 0 && b.length; i--) b[int(b.length)]! ^= 1 << int(8); // bit flips
      return b;
    }
    if (kind === 2) {
      for (let i = int(3) + 1; i > 0 && b.length; i--) b[int(b.length)] = pick(INTERESTING); // interesting bytes
      return b;
    }
    if (kind === 3) {
      // Splice two seeds.
      const other = pick(SEEDS_BYTES);
      const cut = int(b.length + 1);
      const out = new Uint8Array(cut + other.length - int(other.length + 1));
      out.set(b.subarray(0, cut));
      out.set(other.subarray(other.length - (out.length - cut)), cut);
      return out;
    }
    // Delete a range.
    const at = int(b.length + 1);
    const len = int(16);
    return Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + len)]);
  }

  function mutateText(src: string): string {
    const kind = int(4);
    if (kind === 0) return src.slice(0, int(src.length + 1));
    const at = int(src.length + 1);
    if (kind === 1)
      return (
        src.slice(0, at) +
        pick(['"', '{', '}', '[', ']', ',', ':', '\\', 'null', '1e999', '-', '"__proto__":{}', '\uD800']) +
        src.slice(at)
      );
    if (kind === 2) return src.slice(0, at) + src.slice(at + int(10));
    // Inject a key into the top object.
    return src.replace('{', `{"${pick(FIELDS)}":${JSON.stringify(randomValue(2)) ?? 'null'},`);
  }

  function deep(): Frame {
    const n = int(100) + 1;
    const open = rand() < 0.5 ? '['.repeat(n) : '{"a":'.repeat(n);
    const close = open.startsWith('[') ? ']'.repeat(n) : '}'.repeat(n);
    const json = `{"type":"heartbeat","status":"ok","metadata":{"x":${open}1${close}}}`;
    if (rand() < 0.5) return json;
    const mp = Buffer.concat([
      Buffer.from([0x83, 0xa4]),
      Buffer.from('type'),
      Buffer.from([0xa9]),
      Buffer.from('heartbeat'),
      Buffer.from([0xa6]),
      Buffer.from('status'),
      Buffer.from([0xa2]),
      Buffer.from('ok'),
      Buffer.from([0xa8]),
      Buffer.from('metadata'),
      rand() < 0.5 ? Buffer.alloc(n, 0x91) : Buffer.alloc(n * 3).map((_, i) => [0x81, 0xa1, 0x61][i % 3]!),
      Buffer.from([0x01]),
    ]);
    return mp;
  }

  function huge(): Frame {
    const len = int(12 * 1024) + 4 * 1024; // sometimes over LIMITS.maxFrameBytes once escaped / multi-byte
    const ch = pick(['a', 'é', '✓', '\\n', '"']);
    const s = ch.repeat(Math.floor(len / ch.length));
    const v = {
      type: 'command_results',
      status: 'continue',
      action_results: [{ status: 'success', result: s }],
    };
    return asFrame(v);
  }

  function protoKeys(): Frame {
    const key = pick(['__proto__', 'constructor']);
    const inner = `{"${key}":{"polluted":true}}`;
    const where = int(3);
    const json =
      where === 0
        ? `{"type":"heartbeat","status":"ok",${inner.slice(1, -1)}}`
        : where === 1
          ? `{"type":"heartbeat","status":"ok","metadata":{"a":[${inner}]}}`
          : `{"type":"command","status":"continue","actions":[{"tool_name":"t","tool_type":"action","parameters":${inner}}]}`;
    return rand() < 0.5 ? json : packValue(JSON.parse(json));
  }

  function randomBytes(): Uint8Array {
    const b = new Uint8Array(int(64));
    for (let i = 0; i < b.length; i++) b[i] = rand() < 0.3 ? pick(INTERESTING) : int(256);
    if (b.length && rand() < 0.5) b[0] = 0x80 | int(16); // start with a fixmap header
    return b;
  }

  return (): Frame => {
    switch (int(9)) {
      case 0:
        return mutateText(pick(SEEDS_JSON));
      case 1:
      case 2:
        return mutateBytes(pick(SEEDS_BYTES));
      case 3:
        return deep();
      case 4:
        return rand() < 0.1 ? huge() : asFrame(randomEnvelope());
      case 5:
        return protoKeys();
      case 6:
        return randomBytes();
      case 7:
        return asFrame(randomValue(0));
      default:
        return asFrame(randomEnvelope());
    }
  };
}

const BAD_UTF8 = [
  [0x80],
  [0xbf],
  [0xc0, 0x80],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0x80],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf5],
  [0xf8, 0x88, 0x80, 0x80],
  [0xff],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
];
/** msgpackr extension types: the ones that read the tokens after them, leaves, and unknown ones. */
const EXT_TYPES = [0x00, 0x42, 0x62, 0x65, 0x69, 0x70, 0x72, 0x73, 0x74, 0x78, 0xff, 0x01, 0x7f];

/** The harness's extra frame kinds, on top of `makeGen`'s. */
export function makeHostileGen(rand: () => number): () => Frame {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

  /** A valid frame whose one string (a value or a key, of 4 to 70,000 bytes) holds an invalid UTF-8 sequence. */
  function invalidUtf8(): Uint8Array {
    const len = pick([4, 5, 31, 32, 255, 256, 300, 65_535, 65_536, 70_000]);
    const holder = 'Z'.repeat(len);
    const value =
      rand() < 0.5
        ? { type: 'heartbeat', status: 'ok', client_id: holder }
        : { type: 'heartbeat', status: 'ok', metadata: { [holder]: 1 } };
    const bytes = rand() < 0.5 ? Buffer.from(JSON.stringify(value)) : Buffer.from(packValue(value));
    const bad = pick(BAD_UTF8);
    const at = bytes.indexOf('Z') + int(len - bad.length + 1);
    bytes.set(bad, at);
    return bytes;
  }

  /** Nesting of 1 to 5,000 levels, arrays and maps mixed, sometimes truncated. */
  function deepMix(): Frame {
    const levels = 1 + int(rand() < 0.5 ? 200 : 5000);
    const kinds = Array.from({ length: levels }, () => rand() < 0.5);
    if (rand() < 0.5) {
      const open = kinds.map((isArray) => (isArray ? '[' : '{"k":')).join('');
      const close = kinds
        .map((isArray) => (isArray ? ']' : '}'))
        .reverse()
        .join('');
      const text = `{"type":"heartbeat","status":"ok","metadata":{"x":${open}1${close}}}`;
      return rand() < 0.2 ? text.slice(0, int(text.length)) : text;
    }
    const body = Buffer.concat(kinds.map((isArray) => Buffer.from(isArray ? [0x91] : [0x81, 0xa1, 0x6b])));
    const frame = Buffer.concat([
      Buffer.from([0x83, 0xa4]),
      Buffer.from('type'),
      Buffer.from([0xa9]),
      Buffer.from('heartbeat'),
      Buffer.from([0xa6]),
      Buffer.from('status'),
      Buffer.from([0xa2]),
      Buffer.from('ok'),
      Buffer.from([0xa1, 0x78]),
      body,
      Buffer.from([0x01]),
    ]);
    return rand() < 0.2 ? frame.subarray(0, int(frame.length)) : frame;
  }

  /** A map whose value is an extension token (any header, any type), followed by more tokens. */
  function extension(): Uint8Array {
    const type = pick(EXT_TYPES);
    const header = pick([
      [0xd4, type, 0],
      [0xd5, type, 0, 0],
      [0xd6, type, 0, 0, 0, 1],
      [0xd7, type, 0, 0, 0, 0, 0, 0, 0, 1],
      [0xc7, 2, type, 1, 2],
    ]);
    const tail = pick([
      [0x91, 0x91, 0xc0],
      [0x92, 0xa1, 0x61, 0xa1, 0x62],
      [0x81, 0xa9, ...Buffer.from('__proto__'), 0xc0],
      [0xc0],
    ]);
    return Buffer.from([
      0x82,
      0xa4,
      ...Buffer.from('type'),
      0xa9,
      ...Buffer.from('heartbeat'),
      0xa1,
      0x78,
      ...header,
      ...tail,
    ]);
  }

  return (): Frame => {
    switch (int(3)) {
      case 0:
        return invalidUtf8();
      case 1:
        return deepMix();
      default:
        return extension();
    }
  };
}
