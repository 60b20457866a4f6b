/**
 * Fuzzing the decoders: 100,000+ random and mutated frames (truncated, bit-flipped, spliced, deeply nested,
 * huge strings, prototype keys, random bytes, random JSON values) through decodeClientMessage and
 * decodeServerMessage with both codecs.
 *
 * Invariants: no exception escapes; every failure is an AipError whose code is in the catalogue; every
 * success re-validates against the schema. A seeded PRNG makes every failure reproducible: the failure
 * message names the chunk seed and frame index.
 */
import { describe, expect, it } from 'vitest';
import {
  AipError,
  ClientMessage,
  Errors,
  ServerMessage,
  decodeClientMessage,
  decodeServerMessage,
  jsonCodec,
  msgpackCodec,
  packValue,
  type DecodeLimits,
  type Decoded,
} from '../../protocol/index.js';
import { ALL_FRAMES } from '../fixtures/aip-frames.js';

const FRAMES_PER_CHUNK = 10_000;
const CHUNKS = 10;
const BASE_SEED = 0xa1bd_2026;
const CODES = new Set<number>(Object.values(Errors).map((s) => s.code));
/** Smaller than the defaults so the size and depth guards fire often without big allocations. */
const LIMITS: DecodeLimits = { maxFrameBytes: 16 * 1024, maxDepth: 64 };

/** mulberry32: small, fast, seedable. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Frame = string | Uint8Array;

const SEEDS_JSON = ALL_FRAMES.map((f) => f.raw);
const SEEDS_BYTES = ALL_FRAMES.flatMap((f) => [new TextEncoder().encode(f.raw), packValue(JSON.parse(f.raw))]);
const FIELDS = [
  'type', 'status', 'client_type', 'client_id', 'session_id', 'task_name', 'target_id', 'request', 'metadata',
  'action_results', 'actions', 'result', 'error', 'response_id', 'prev_response_id', 'timestamp', 'tool_name',
  'tool_type', 'parameters', 'call_id', 'namespace', 'messages', '__proto__', 'constructor', 'prototype',
];
const WORDS = [
  'heartbeat', 'register', 'task', 'command', 'command_results', 'task_end', 'error', 'ok', 'continue', 'completed',
  'failed', 'device', 'constellation', 'success', 'failure', 'skipped', 'none', 'action', 'data_collection',
  'HEARTBEAT', '', '\uFFFD', 'é✓𝄞', '\u0000', '\uD800',
];
const INTERESTING = [0x00, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc3, 0xd9, 0xdc, 0xde, 0xdf, 0xed, 0xf4, 0xf8, 0xff, 0x22, 0x5b, 0x7b, 0x5c];

function makeGen(rand: () => number) {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

  function randomValue(depth: number): unknown {
    const r = int(depth > 3 ? 6 : 9);
    switch (r) {
      case 0: return null;
      case 1: return rand() < 0.5;
      case 2: return rand() < 0.5 ? int(1000) - 500 : (rand() - 0.5) * 1e6;
      case 3: case 4: return pick(WORDS);
      case 5: return String.fromCharCode(...Array.from({ length: int(12) }, () => int(0x3000)));
      case 6: return Array.from({ length: int(4) }, () => randomValue(depth + 1));
      default: {
        const o: Record<string, unknown> = {};
        for (let i = int(4); i > 0; i--) Object.defineProperty(o, pick(FIELDS), { value: randomValue(depth + 1), enumerable: true, writable: true, configurable: true });
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
    if (kind === 1) return src.slice(0, at) + pick(['"', '{', '}', '[', ']', ',', ':', '\\', 'null', '1e999', '-', '"__proto__":{}', '\uD800']) + src.slice(at);
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
    const mp = Buffer.concat([Buffer.from([0x83, 0xa4]), Buffer.from('type'), Buffer.from([0xa9]), Buffer.from('heartbeat'),
      Buffer.from([0xa6]), Buffer.from('status'), Buffer.from([0xa2]), Buffer.from('ok'),
      Buffer.from([0xa8]), Buffer.from('metadata'), rand() < 0.5 ? Buffer.alloc(n, 0x91) : Buffer.alloc(n * 3).map((_, i) => [0x81, 0xa1, 0x61][i % 3]!), Buffer.from([0x01])]);
    return mp;
  }

  function huge(): Frame {
    const len = int(12 * 1024) + 4 * 1024; // sometimes over LIMITS.maxFrameBytes once escaped / multi-byte
    const ch = pick(['a', 'é', '✓', '\\n', '"']);
    const s = ch.repeat(Math.floor(len / ch.length));
    const v = { type: 'command_results', status: 'continue', action_results: [{ status: 'success', result: s }] };
    return asFrame(v);
  }

  function protoKeys(): Frame {
    const key = pick(['__proto__', 'constructor']);
    const inner = `{"${key}":{"polluted":true}}`;
    const where = int(3);
    const json =
      where === 0 ? `{"type":"heartbeat","status":"ok",${inner.slice(1, -1)}}`
      : where === 1 ? `{"type":"heartbeat","status":"ok","metadata":{"a":[${inner}]}}`
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
      case 0: return mutateText(pick(SEEDS_JSON));
      case 1: case 2: return mutateBytes(pick(SEEDS_BYTES));
      case 3: return deep();
      case 4: return rand() < 0.1 ? huge() : asFrame(randomEnvelope());
      case 5: return protoKeys();
      case 6: return randomBytes();
      case 7: return asFrame(randomValue(0));
      default: return asFrame(randomEnvelope());
    }
  };
}

interface Tally { frames: number; calls: number; ok: number; failed: number; byCode: Map<number, number> }

function check(r: Decoded<unknown>, dir: 'client' | 'server', tally: Tally, where: () => string): void {
  tally.calls++;
  if (r.ok) {
    tally.ok++;
    const again = (dir === 'client' ? ClientMessage : ServerMessage).safeParse(r.value);
    if (!again.success) throw new Error(`success that does not validate at ${where()}`);
    return;
  }
  tally.failed++;
  if (!(r.error instanceof AipError) || !CODES.has(r.error.code)) throw new Error(`bad error ${String(r.error)} at ${where()}`);
  tally.byCode.set(r.error.code, (tally.byCode.get(r.error.code) ?? 0) + 1);
}

function runChunk(seed: number, tally: Tally): void {
  // Most frames fail, and capturing a stack for each of those ~200k expected errors dominates the run time.
  // The failure message below names the seed and frame instead.
  const stackLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    runFrames(seed, tally);
  } finally {
    Error.stackTraceLimit = stackLimit;
  }
}

function runFrames(seed: number, tally: Tally): void {
  const next = makeGen(prng(seed));
  for (let i = 0; i < FRAMES_PER_CHUNK; i++) {
    const frame = next();
    tally.frames++;
    const where = () =>
      `seed ${seed} frame ${i}: ${typeof frame === 'string' ? JSON.stringify(frame.slice(0, 200)) : Buffer.from(frame.subarray(0, 100)).toString('hex')}`;
    try {
      if (typeof frame === 'string') {
        // A text frame takes the JSON path in both codecs (codec.test.ts checks they agree), so once suffices.
        check(decodeClientMessage(jsonCodec, frame, false, LIMITS), 'client', tally, where);
        check(decodeServerMessage(jsonCodec, frame, false, LIMITS), 'server', tally, where);
      } else {
        check(decodeClientMessage(msgpackCodec, frame, true, LIMITS), 'client', tally, where);
        check(decodeServerMessage(msgpackCodec, frame, true, LIMITS), 'server', tally, where);
        // Binary JSON: both envelopes share the byte-level path, so alternate them.
        if (i % 2) check(decodeClientMessage(jsonCodec, frame, true, LIMITS), 'client', tally, where);
        else check(decodeServerMessage(jsonCodec, frame, true, LIMITS), 'server', tally, where);
      }
    } catch (err) {
      throw new Error(`exception escaped or invariant broken: ${err instanceof Error ? err.message : String(err)} (${where()})`, { cause: err });
    }
  }
}

describe('decoder fuzzing', () => {
  const tally: Tally = { frames: 0, calls: 0, ok: 0, failed: 0, byCode: new Map() };

  for (let c = 0; c < CHUNKS; c++) {
    it(`chunk ${c} (seed ${BASE_SEED + c}): ${FRAMES_PER_CHUNK} frames`, () => {
      runChunk(BASE_SEED + c, tally);
    });
  }

  it('covered at least 100,000 frames, with successes and the main failure kinds', () => {
    expect(tally.frames).toBeGreaterThanOrEqual(100_000);
    expect(tally.calls).toBeGreaterThanOrEqual(tally.frames * 2);
    expect(tally.ok).toBeGreaterThan(0);
    for (const name of ['INVALID_JSON', 'INVALID_MSGPACK', 'TOO_DEEP', 'FORBIDDEN_KEY', 'NOT_AN_OBJECT', 'VALIDATION', 'FRAME_TOO_LARGE', 'INVALID_UTF8'] as const) {
      expect(tally.byCode.get(Errors[name].code) ?? 0, name).toBeGreaterThan(0);
    }
    expect(Object.prototype).not.toHaveProperty('polluted');
    if (process.env.FUZZ_STATS) console.log({ ...tally, byCode: Object.fromEntries(tally.byCode), cpuMs: process.cpuUsage().user / 1000 });
  });
});
