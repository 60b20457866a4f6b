/**
 * Fuzzing the decoders: 100,000+ random and mutated frames (truncated, bit-flipped, spliced, deeply nested,
 * huge strings, prototype keys, random bytes, random JSON values; the generator is ./fuzz-gen.ts, shared with
 * the longer harness `npm run fuzz`) through decodeClientMessage and decodeServerMessage with both codecs.
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
  type Decoded,
} from '../../protocol/index.js';
import { FUZZ_LIMITS as LIMITS, makeGen, prng } from './fuzz-gen.js';

const FRAMES_PER_CHUNK = 10_000;
const CHUNKS = 10;
const BASE_SEED = 0xa1bd_2026;
const CODES = new Set<number>(Object.values(Errors).map((s) => s.code));

interface Tally {
  frames: number;
  calls: number;
  ok: number;
  failed: number;
  byCode: Map<number, number>;
}

function check(r: Decoded<unknown>, dir: 'client' | 'server', tally: Tally, where: () => string): void {
  tally.calls++;
  if (r.ok) {
    tally.ok++;
    const again = (dir === 'client' ? ClientMessage : ServerMessage).safeParse(r.value);
    if (!again.success) throw new Error(`success that does not validate at ${where()}`);
    return;
  }
  tally.failed++;
  if (!(r.error instanceof AipError) || !CODES.has(r.error.code))
    throw new Error(`bad error ${String(r.error)} at ${where()}`);
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
      throw new Error(
        `exception escaped or invariant broken: ${err instanceof Error ? err.message : String(err)} (${where()})`,
        { cause: err },
      );
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
    for (const name of [
      'INVALID_JSON',
      'INVALID_MSGPACK',
      'TOO_DEEP',
      'FORBIDDEN_KEY',
      'NOT_AN_OBJECT',
      'VALIDATION',
      'FRAME_TOO_LARGE',
      'INVALID_UTF8',
    ] as const) {
      expect(tally.byCode.get(Errors[name].code) ?? 0, name).toBeGreaterThan(0);
    }
    expect(Object.prototype).not.toHaveProperty('polluted');
    if (process.env.FUZZ_STATS)
      console.log({
        ...tally,
        byCode: Object.fromEntries(tally.byCode),
        cpuMs: process.cpuUsage().user / 1000,
      });
  });
});
