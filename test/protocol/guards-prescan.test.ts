/**
 * The depth guard runs before JSON.parse and msgpack unpack: a ~100 MB frame nested far deeper than maxDepth
 * is refused with TOO_DEEP, and the process's RSS grows by less than twice the frame across the decode (checked
 * only on the parsed tree, the nested-arrays text frame below cost 2.5 GB of RSS and 40 s on a 2-vCPU box). Frames whose excess depth comes only
 * at the very end are scanned whole, so they show the scan's cost is one linear pass that allocates nothing
 * per byte; how fast that pass is belongs to bench/micro/prescan.ts, so no time is asserted here.
 * Set GUARD_STATS=1 to print the time and RSS growth of each decode.
 */
import { describe, expect, it } from 'vitest';
import {
  Errors,
  decodeClientMessage,
  jsonCodec,
  msgpackCodec,
  packValue,
  DEFAULT_LIMITS,
  type Decoded,
} from '../../protocol/index.js';

/** The default limits without the container cap, so frames wide before they are deep are scanned to the end. */
const DEPTH_ONLY = { ...DEFAULT_LIMITS, maxContainers: Number.MAX_SAFE_INTEGER };

const MIB = 1024 * 1024;
/** ~100 MB: just under the default 100 MiB frame limit, so only the depth guard can refuse these frames. */
const BIG = 100_000_000;
const HEAD = '{"type":"heartbeat","status":"ok","metadata":{';

/** A flat copy of a (possibly rope-shaped) string, so no decode step has to flatten it inside the measurement. */
function flat(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1');
}

interface Measured {
  readonly result: Decoded<unknown>;
  readonly rssGrowth: number;
}

function measure(label: string, frameBytes: number, decode: () => Decoded<unknown>): Measured {
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const result = decode();
  const ms = performance.now() - t0;
  const rssGrowth = process.memoryUsage().rss - rss0;
  if (process.env.GUARD_STATS) {
    const mib = frameBytes / MIB;
    const rss = `${rssGrowth >= 0 ? '+' : ''}${(rssGrowth / MIB).toFixed(1)}`;
    console.log(
      `${label}: ${mib.toFixed(1)} MiB, ${ms.toFixed(1)} ms (${(ms / mib).toFixed(2)} ms/MiB), RSS ${rss} MiB`,
    );
  }
  return { result, rssGrowth };
}

function expectRefusedCheaply(m: Measured, frameBytes: number): void {
  expect(m.result.ok).toBe(false);
  if (m.result.ok) return;
  expect(m.result.error.code).toBe(Errors.TOO_DEEP.code);
  expect(m.rssGrowth).toBeLessThan(2 * frameBytes);
}

/** `{"type":…,"metadata":{"x":[[[…]]]}}` with `levels` nested arrays: ~2 bytes per level. */
function nestedJson(levels: number): string {
  return flat(`${HEAD}"x":${'['.repeat(levels)}${']'.repeat(levels)}}}`);
}

/** ~`bytes` of legal, shallow content (a long string, then many empty objects) and a too-deep value last. */
function wideThenDeepJson(bytes: number): string {
  const pad = Math.floor(bytes * 0.4);
  const objects = Math.floor((bytes * 0.6) / 3);
  return flat(
    `${HEAD}"pad":"${'a'.repeat(pad)}","list":[${'{},'.repeat(objects)}{}],"x":${'['.repeat(200)}${']'.repeat(200)}}}`,
  );
}

/** msgpack `{x: [[[…]]]}` with `levels` nested one-element arrays and a nil at the bottom. */
function nestedMsgpack(levels: number): Uint8Array {
  return Buffer.concat([Buffer.from([0x81, 0xa1, 0x78]), Buffer.alloc(levels, 0x91), Buffer.from([0xc0])]);
}

/** msgpack `{type, status, pad: str32, list: array32 of fixints, x: 200 nested arrays}` of about `bytes`. */
function wideThenDeepMsgpack(bytes: number): Uint8Array {
  const padLen = Math.floor(bytes * 0.4);
  const count = Math.floor(bytes * 0.6);
  const head = Buffer.from(packValue({ type: 'heartbeat', status: 'ok' }));
  head[0] = 0x85; // five entries instead of two
  const str32 = Buffer.alloc(5);
  str32[0] = 0xdb;
  str32.writeUInt32BE(padLen, 1);
  const arr32 = Buffer.alloc(5);
  arr32[0] = 0xdd;
  arr32.writeUInt32BE(count, 1);
  return Buffer.concat([
    head,
    Buffer.from([0xa3, ...Buffer.from('pad')]),
    str32,
    Buffer.alloc(padLen, 0x61),
    Buffer.from([0xa4, ...Buffer.from('list')]),
    arr32,
    Buffer.alloc(count, 0x01),
    Buffer.from([0xa1, 0x78]),
    Buffer.alloc(200, 0x91),
    Buffer.from([0xc0]),
  ]);
}

describe('depth is refused before parsing, without allocating per byte', () => {
  it('JSON text: ~100 MB of nested arrays', () => {
    const frame = nestedJson(BIG / 2);
    expectRefusedCheaply(
      measure('json text, nested', frame.length, () => decodeClientMessage(jsonCodec, frame, false)),
      frame.length,
    );
  });

  it('JSON text: ~100 MB of shallow content with the excess depth at the end', () => {
    const frame = wideThenDeepJson(BIG);
    expectRefusedCheaply(
      measure('json text, wide then deep', frame.length, () =>
        decodeClientMessage(jsonCodec, frame, false, DEPTH_ONLY),
      ),
      frame.length,
    );
  });

  it('JSON binary frame: ~100 MB, refused before it is decoded to text', () => {
    for (const frame of [
      Buffer.from(nestedJson(BIG / 2), 'latin1'),
      Buffer.from(wideThenDeepJson(BIG), 'latin1'),
    ]) {
      expectRefusedCheaply(
        measure('json bytes', frame.length, () => decodeClientMessage(jsonCodec, frame, true, DEPTH_ONLY)),
        frame.length,
      );
    }
  });

  it('msgpack: ~100 MB of nested arrays', () => {
    const frame = nestedMsgpack(BIG);
    expectRefusedCheaply(
      measure('msgpack, nested', frame.length, () => decodeClientMessage(msgpackCodec, frame, true)),
      frame.length,
    );
  });

  it('msgpack: ~100 MB with a long string and many tokens before the excess depth', () => {
    const frame = wideThenDeepMsgpack(BIG);
    expectRefusedCheaply(
      measure('msgpack, wide then deep', frame.length, () =>
        decodeClientMessage(msgpackCodec, frame, true, DEPTH_ONLY),
      ),
      frame.length,
    );
  });

  it('the cost is one linear pass: frames of 12.5 to 100 MB, all scanned to the end, all refused cheaply', () => {
    for (const size of [BIG / 8, BIG / 4, BIG / 2, BIG]) {
      const text = wideThenDeepJson(size);
      expectRefusedCheaply(
        measure('json text, linear', text.length, () =>
          decodeClientMessage(jsonCodec, text, false, DEPTH_ONLY),
        ),
        text.length,
      );
      const packed = wideThenDeepMsgpack(size);
      expectRefusedCheaply(
        measure('msgpack, linear', packed.length, () =>
          decodeClientMessage(msgpackCodec, packed, true, DEPTH_ONLY),
        ),
        packed.length,
      );
    }
  });

  it('the same frames without the excess depth are still accepted (the scan refuses only depth)', () => {
    const text = flat(`${HEAD}"pad":"${'a'.repeat(MIB)}","x":${'['.repeat(126)}${']'.repeat(126)}}}`);
    expect(decodeClientMessage(jsonCodec, text, false).ok).toBe(true);
    expect(decodeClientMessage(jsonCodec, Buffer.from(text), true).ok).toBe(true);
    const deeper = flat(`${HEAD}"pad":"${'a'.repeat(MIB)}","x":${'['.repeat(127)}${']'.repeat(127)}}}`);
    const refused = decodeClientMessage(jsonCodec, Buffer.from(deeper), true);
    expect(refused.ok || refused.error.code).toBe(Errors.TOO_DEEP.code);
    const packed = packValue({
      type: 'heartbeat',
      status: 'ok',
      metadata: { pad: 'a'.repeat(MIB), x: nest(126) },
    });
    expect(decodeClientMessage(msgpackCodec, packed, true).ok).toBe(true);
    const tooDeep = packValue({
      type: 'heartbeat',
      status: 'ok',
      metadata: { pad: 'a'.repeat(MIB), x: nest(127) },
    });
    const r = decodeClientMessage(msgpackCodec, tooDeep, true);
    expect(r.ok || r.error.code).toBe(Errors.TOO_DEEP.code);
  });
});

/** `levels` nested empty arrays: [[[…]]]. */
function nest(levels: number): unknown[] {
  let v: unknown[] = [];
  for (let i = 1; i < levels; i++) v = [v];
  return v;
}

describe('the container budget is checked before parsing', () => {
  const limits = { ...DEFAULT_LIMITS, maxContainers: 1000 };
  it('refuses a frame with more objects and arrays than the budget, in both codecs, and accepts one at the budget', () => {
    const at = { type: 'heartbeat', status: 'ok', metadata: { x: Array.from({ length: 997 }, () => []) } };
    const over = {
      type: 'heartbeat',
      status: 'ok',
      metadata: { x: Array.from({ length: 998 }, () => ({})) },
    };
    expect(decodeClientMessage(jsonCodec, JSON.stringify(at), false, limits).ok).toBe(true);
    expect(decodeClientMessage(msgpackCodec, packValue(at), true, limits).ok).toBe(true);
    for (const r of [
      decodeClientMessage(jsonCodec, JSON.stringify(over), false, limits),
      decodeClientMessage(jsonCodec, Buffer.from(JSON.stringify(over)), true, limits),
      decodeClientMessage(msgpackCodec, packValue(over), true, limits),
    ]) {
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.message).toBe('Message holds more than 1000 objects and arrays');
    }
  });

  it('does not count brackets inside strings', () => {
    const text = JSON.stringify({ type: 'heartbeat', status: 'ok', metadata: { s: '[]{}'.repeat(5000) } });
    expect(decodeClientMessage(jsonCodec, text, false, limits).ok).toBe(true);
  });
});

describe('msgpack extensions', () => {
  it('refuses a BigInt (ext 0x42) before unpacking, since no JSON encoder could write it back', () => {
    const head = packValue({ type: 'heartbeat', status: 'ok', metadata: { n: 0 } });
    // Replace the trailing fixint 0 with fixext 8 of type 0x42 (msgpackr's BigInt).
    const bytes = new Uint8Array([...head.subarray(0, head.length - 1), 0xd7, 0x42, 0, 0, 0, 0, 0, 0, 0, 1]);
    const r = decodeClientMessage(msgpackCodec, bytes, true);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toContain('extension type 0x42 is not supported');
  });
});
