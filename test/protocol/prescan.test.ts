/**
 * The byte-level pre-scans (protocol/codec/prescan.ts) against references: the depth of the parsed tree, Node's
 * Buffer.byteLength and buffer.isUtf8, on seeded random inputs; and the msgpack walk's verdicts on the tokens
 * that need care (string headers, extensions, bytes that only look like a `__proto__` key).
 */
import { isUtf8 } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { Errors, decodeClientMessage, msgpackCodec, packValue } from '../../protocol/index.js';
import {
  isUtf8Range,
  jsonBytesTooDeep,
  jsonTooDeep,
  prescanMsgpack,
  utf8ByteLength,
} from '../../protocol/codec/prescan.js';
import { prng } from './fuzz-gen.js';

const HB = { type: 'heartbeat', status: 'ok' };
/** Strings that are hard for a scanner that skips strings: brackets, quotes and backslashes inside them. */
const TRICKY = [
  '[',
  ']',
  '{',
  '}',
  '"',
  '\\',
  '\\"',
  '"]',
  '\\\\',
  'x'.repeat(40) + '"[{',
  '\u00e9[',
  '𝄞{',
  '',
];

function depthOf(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  const children = Array.isArray(v) ? v : Object.values(v as Record<string, unknown>);
  return 1 + children.reduce<number>((m, c) => Math.max(m, depthOf(c)), 0);
}

function randomTree(rand: () => number, depth: number): unknown {
  const r = rand();
  if (depth > 9 || r < 0.3) {
    const pick = Math.floor(rand() * (TRICKY.length + 3));
    return pick < TRICKY.length ? TRICKY[pick] : pick === TRICKY.length ? null : Math.floor(rand() * 100);
  }
  const n = Math.floor(rand() * 4);
  if (r < 0.65) return Array.from({ length: n }, () => randomTree(rand, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n; i++)
    o[TRICKY[Math.floor(rand() * TRICKY.length)]! + i] = randomTree(rand, depth + 1);
  return o;
}

describe('JSON depth pre-scan', () => {
  it('agrees with the parsed depth on 5,000 random trees, at every limit, as text and as bytes', () => {
    const rand = prng(0x5ca1ab1e);
    for (let k = 0; k < 5000; k++) {
      const tree = { root: randomTree(rand, 1) };
      const text = JSON.stringify(tree);
      const bytes = new TextEncoder().encode(text);
      const depth = depthOf(tree);
      for (const max of [1, depth - 1, depth, depth + 1]) {
        if (max < 1) continue;
        expect(jsonTooDeep(text, max), `${text} at ${max}`).toBe(depth > max);
        expect(jsonBytesTooDeep(bytes, max), `${text} at ${max}`).toBe(depth > max);
      }
    }
  });

  it('never lets an over-deep prefix through: when it says no, JSON.parse fails or the tree is shallow enough', () => {
    const rand = prng(0xdeadbeef);
    for (let k = 0; k < 5000; k++) {
      const text = JSON.stringify({ root: randomTree(rand, 1) });
      const at = Math.floor(rand() * text.length);
      const cut =
        rand() < 0.5 ? text.slice(0, at) : text.slice(0, at) + text.slice(at + 1 + Math.floor(rand() * 5));
      const max = 1 + Math.floor(rand() * 6);
      if (jsonTooDeep(cut, max)) continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(cut);
      } catch {
        continue;
      }
      expect(depthOf(parsed), cut).toBeLessThanOrEqual(max);
    }
  });

  it('handles escapes at every position of long strings', () => {
    for (let run = 0; run < 40; run++) {
      const s = `${'a'.repeat(run)}\\"[[[${'\\\\'.repeat(run % 3)}`;
      const text = `{"k":"${s}","v":[[1]]}`;
      expect(JSON.parse(text)).toBeTruthy();
      expect(jsonTooDeep(text, 3)).toBe(false);
      expect(jsonTooDeep(text, 2)).toBe(true);
      expect(jsonBytesTooDeep(new TextEncoder().encode(text), 2)).toBe(true);
    }
  });
});

describe('msgpack token walk', () => {
  it('agrees with the depth of the unpacked tree on 5,000 random trees', () => {
    const rand = prng(0x0ddba11);
    for (let k = 0; k < 5000; k++) {
      // a float whose bytes look like containers and a string header: skipped as one token
      const tree = {
        root: randomTree(rand, 1),
        f: new DataView(Uint8Array.of(0x91, 0x91, 0xa9, 0, 0, 0, 0, 0).buffer).getFloat64(0),
      };
      const depth = depthOf({ root: tree.root });
      const packed = packValue(tree);
      for (const max of [depth - 1, depth, depth + 1]) {
        if (max < 1) continue;
        const r = prescanMsgpack(packed, max);
        expect(r?.code ?? null, JSON.stringify(tree.root)).toBe(depth > max ? Errors.TOO_DEEP.code : null);
      }
    }
  });

  it('str8, str16 and str32 headers are walked: a __proto__ after a long string is still found', () => {
    for (const len of [20, 300, 70_000]) {
      const b = Buffer.from(packValue({ ...HB, request: 'r'.repeat(len), metadata: { abcdefghi: 1 } }));
      b.set(Buffer.from('__proto__'), b.indexOf('abcdefghi'));
      expect(prescanMsgpack(b, 128)?.code).toBe(Errors.FORBIDDEN_KEY.code);
    }
  });

  it('bytes that only look like a __proto__ key (inside a longer string) are not refused; a bin is, as a bin', () => {
    const lookalike = Buffer.from([0xa9, ...Buffer.from('__proto__')]);
    const bin = decodeClientMessage(msgpackCodec, packValue({ ...HB, metadata: { blob: lookalike } }), true);
    expect(bin.ok || bin.error.message).toBe(
      'Unsupported value at depth 2: a binary (bin) value; AIP messages carry JSON values only',
    );
    expect(
      decodeClientMessage(msgpackCodec, packValue({ ...HB, client_id: '\u00a9__proto__' }), true).ok,
    ).toBe(true);
  });

  it('refuses bytes after the message at once, before unpack (whose error would write the whole value out)', () => {
    const big = packValue({ ...HB, metadata: { s: 'x'.repeat(4 * 1024 * 1024) } });
    const trailing = Buffer.concat([big, Buffer.from([0xc0])]);
    const r = decodeClientMessage(msgpackCodec, trailing, true);
    expect(r.ok || r.error.message).toBe('Invalid msgpack: 1 bytes after the message');
    expect(prescanMsgpack(Buffer.concat([packValue(HB), packValue(HB)]), 128)?.code).toBe(
      Errors.INVALID_MSGPACK.code,
    );
    expect(prescanMsgpack(packValue(HB), 128)).toBeNull();
  });

  it('refuses bin values anywhere in a message: AIP carries JSON values only', () => {
    for (const [value, depth] of [
      [{ ...HB, metadata: { b: new Uint8Array(2 * 1024 * 1024) } }, 2],
      [{ ...HB, client_id: new Uint8Array([1]) }, 1],
    ] as const) {
      const r = decodeClientMessage(msgpackCodec, packValue(value), true);
      expect(r.ok || r.error.message).toBe(
        `Unsupported value at depth ${depth}: a binary (bin) value; AIP messages carry JSON values only`,
      );
    }
  });

  it('msgpackr extensions that read the following tokens as their content are refused before unpack', () => {
    for (const type of [0x62, 0x65, 0x69, 0x72, 0x73, 0x78]) {
      // {x: ext, y: [[[…]]]}: unpack would nest the arrays inside the extension's value.
      const frame = Buffer.concat([
        Buffer.from([0x82, 0xa1, 0x78, 0xd4, type, 0x00, 0xa1, 0x79]),
        Buffer.alloc(1000, 0x91),
        Buffer.from([0xc0]),
      ]);
      const r = decodeClientMessage(msgpackCodec, frame, true);
      expect(r.ok || r.error.code, `type 0x${type.toString(16)}`).toBe(Errors.INVALID_MSGPACK.code);
    }
    // Leaf extensions keep their outcome: a timestamp unpacks to a Date, which checkTree refuses.
    const date = decodeClientMessage(
      msgpackCodec,
      packValue({ ...HB, metadata: { when: new Date(0) } }),
      true,
    );
    expect(date.ok || date.error.code).toBe(Errors.UNSUPPORTED_VALUE.code);
  });

  it('a truncated frame is left to unpack, which reports it as INVALID_MSGPACK', () => {
    const full = packValue({ ...HB, metadata: { a: [1, 2, { b: 'x'.repeat(300) }] } });
    for (let cut = 1; cut < full.length; cut++) {
      expect(prescanMsgpack(full.subarray(0, cut), 128)).toBeNull();
      const r = decodeClientMessage(msgpackCodec, full.subarray(0, cut), true);
      expect(r.ok || r.error.code).toBe(Errors.INVALID_MSGPACK.code);
    }
  });
});

describe('UTF-8 helpers', () => {
  it('utf8ByteLength equals Buffer.byteLength, lone surrogates and chunk boundaries included', () => {
    const rand = prng(0xfeed);
    const pieces = ['a', '\u00e9', '\u2713', '𝄞', '\ud800', '\udc00', '\u0000'];
    for (let k = 0; k < 300; k++) {
      const len = k < 100 ? Math.floor(rand() * 50) : 16_380 + Math.floor(rand() * 20);
      let s = '';
      while (s.length < len) s += pieces[Math.floor(rand() * pieces.length)];
      expect(utf8ByteLength(s)).toBe(Buffer.byteLength(s, 'utf8'));
    }
  });

  it('isUtf8Range equals buffer.isUtf8 on random slices, short and long, at every alignment', () => {
    const rand = prng(0xc0ffee);
    const samples = ['a', 'é', '✓', '𝄞'].map((s) => Buffer.from(s));
    for (let k = 0; k < 2000; k++) {
      const len = k % 10 === 0 ? 60_000 + Math.floor(rand() * 80_000) : Math.floor(rand() * 300);
      const parts: Buffer[] = [];
      for (let n = 0; n < len;) {
        const p = rand() < 0.7 ? samples[0]! : samples[Math.floor(rand() * samples.length)]!;
        parts.push(p);
        n += p.length;
      }
      const b = Buffer.concat(parts);
      if (rand() < 0.5 && b.length) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      const start = Math.floor(rand() * 5);
      const stop = Math.max(start, b.length - Math.floor(rand() * 5));
      expect(isUtf8Range(b, start, stop), `${k}`).toBe(isUtf8(b.subarray(start, stop)));
    }
  });
});
