/**
 * Decode guards against hostile input: frame size, UTF-8 validity, nesting depth and prototype keys,
 * for the JSON codec (text and binary frames) and the msgpack codec.
 */
import { describe, expect, it } from 'vitest';
import {
  AipError,
  Errors,
  decodeClientMessage,
  decodeServerMessage,
  jsonCodec,
  msgpackCodec,
  packValue,
  type DecodeLimits,
  type Decoded,
} from '../../protocol/index.js';

const HB = { type: 'heartbeat', status: 'ok' };

function expectCode(r: Decoded<unknown>, code: number): AipError {
  expect(r.ok).toBe(false);
  if (r.ok) throw new Error('unreachable');
  expect(r.error).toBeInstanceOf(AipError);
  expect(r.error.code).toBe(code);
  return r.error;
}

const enc = (s: string) => new TextEncoder().encode(s);

describe('frame too large', () => {
  const limits: DecodeLimits = { maxFrameBytes: 64, maxDepth: 128 };
  const fits = `{"type":"heartbeat","status":"ok","client_id":"${'a'.repeat(64 - 49)}"}`;
  const over = `{"type":"heartbeat","status":"ok","client_id":"${'a'.repeat(65 - 49)}"}`;

  it('accepts a frame of exactly the limit, in every form', () => {
    expect(fits.length).toBe(64);
    expect(decodeClientMessage(jsonCodec, fits, false, limits).ok).toBe(true);
    expect(decodeClientMessage(jsonCodec, enc(fits), true, limits).ok).toBe(true);
    const packed = packValue(JSON.parse(fits));
    expect(
      decodeClientMessage(msgpackCodec, packed, true, { ...limits, maxFrameBytes: packed.byteLength }).ok,
    ).toBe(true);
  });

  it('rejects one byte more as text, binary JSON and msgpack', () => {
    const e = expectCode(decodeClientMessage(jsonCodec, over, false, limits), Errors.FRAME_TOO_LARGE.code);
    expect(e.message).toBe('Frame of 65 bytes exceeds the limit of 64 bytes');
    expectCode(decodeClientMessage(jsonCodec, enc(over), true, limits), Errors.FRAME_TOO_LARGE.code);
    expectCode(
      decodeServerMessage(msgpackCodec, enc(over).buffer, true, limits),
      Errors.FRAME_TOO_LARGE.code,
    );
    const packed = packValue(JSON.parse(over));
    expectCode(
      decodeClientMessage(msgpackCodec, packed, true, { ...limits, maxFrameBytes: packed.byteLength - 1 }),
      Errors.FRAME_TOO_LARGE.code,
    );
  });

  it('counts UTF-8 bytes, not UTF-16 units, for text frames', () => {
    const wide = `{"type":"heartbeat","status":"ok","client_id":"${'é'.repeat(10)}"}`; // 57 units, 67 bytes
    expect(wide.length).toBeLessThanOrEqual(64);
    const e = expectCode(decodeClientMessage(jsonCodec, wide, false, limits), Errors.FRAME_TOO_LARGE.code);
    expect(e.message).toContain(`${Buffer.byteLength(wide)} bytes`);
    expect(
      decodeClientMessage(jsonCodec, wide, false, { ...limits, maxFrameBytes: Buffer.byteLength(wide) }).ok,
    ).toBe(true);
  });
});

describe('invalid UTF-8', () => {
  it('binary JSON frame: rejected, while valid multi-byte text passes', () => {
    const good = enc('{"type":"heartbeat","status":"ok","client_id":"ü✓𝄞"}');
    expect(decodeClientMessage(jsonCodec, good, true)).toMatchObject({
      ok: true,
      value: { client_id: 'ü✓𝄞' },
    });
    for (const badBytes of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
      const bad = Buffer.concat([
        Buffer.from('{"type":"heartbeat","status":"ok","client_id":"a'),
        Buffer.from(badBytes),
        Buffer.from('"}'),
      ]);
      expectCode(decodeClientMessage(jsonCodec, bad, true), Errors.INVALID_UTF8.code);
    }
  });

  function msgpackWithBytes(len: number, patch: number[], inKey = false): Uint8Array {
    const placeholder = 'Z'.repeat(len);
    const obj = inKey ? { ...HB, metadata: { [placeholder]: 1 } } : { ...HB, client_id: placeholder };
    const b = Buffer.from(packValue(obj));
    const at = b.indexOf(placeholder);
    patch.forEach((v, i) => (b[at + 1 + i] = v));
    return b;
  }

  it('msgpack string values and keys of any length: rejected', () => {
    for (const len of [4, 20, 40, 100, 300]) {
      for (const patch of [
        [0x80],
        [0xc0, 0x80],
        [0xed, 0xa0, 0x80],
        [0xf8, 0x88, 0x80, 0x80],
        [0xe2, 0x82],
      ]) {
        expectCode(
          decodeClientMessage(msgpackCodec, msgpackWithBytes(len, patch), true),
          Errors.INVALID_UTF8.code,
        );
        expectCode(
          decodeClientMessage(msgpackCodec, msgpackWithBytes(len, patch, true), true),
          Errors.INVALID_UTF8.code,
        );
      }
    }
  });

  it('msgpack: an encoded U+FFFD elsewhere in the frame (a bin value) does not mask an invalid string', () => {
    const b = Buffer.from(
      packValue({
        ...HB,
        client_id: 'ZZZZ',
        metadata: { blob: new Uint8Array([0xef, 0xbf, 0xbd]), s: 'x\uFFFD' },
      }),
    );
    b[b.indexOf('ZZZZ') + 1] = 0xff;
    expectCode(decodeClientMessage(msgpackCodec, b, true), Errors.INVALID_UTF8.code);
    // str16 and str32 headers are validated too.
    const long = Buffer.from(packValue({ ...HB, client_id: 'Y'.repeat(70_000), request: 'W'.repeat(300) }));
    long[long.indexOf('YYYY') + 5] = 0xc0;
    expectCode(decodeClientMessage(msgpackCodec, long, true), Errors.INVALID_UTF8.code);
  });

  it('a genuine U+FFFD in a msgpack string is accepted', () => {
    const r = decodeClientMessage(
      msgpackCodec,
      packValue({ ...HB, client_id: 'a\uFFFDb', metadata: { '\uFFFD': '\uFFFD' } }),
      true,
    );
    expect(r).toMatchObject({ ok: true, value: { client_id: 'a\uFFFDb' } });
  });
});

describe('nesting depth', () => {
  const limits: DecodeLimits = { maxFrameBytes: 1 << 20, maxDepth: 4 };
  // root (1) → metadata (2) → a (3) → b (4)
  const depth4 = { ...HB, metadata: { a: { b: {} } } };
  const depth5 = { ...HB, metadata: { a: { b: { c: [] } } } };

  it('JSON: at the limit passes, one deeper is rejected', () => {
    expect(decodeClientMessage(jsonCodec, JSON.stringify(depth4), false, limits).ok).toBe(true);
    const e = expectCode(
      decodeClientMessage(jsonCodec, JSON.stringify(depth5), false, limits),
      Errors.TOO_DEEP.code,
    );
    expect(e.message).toBe('Message nesting exceeds the maximum depth of 4');
  });

  it('msgpack: at the limit passes, one deeper is rejected', () => {
    expect(decodeClientMessage(msgpackCodec, packValue(depth4), true, limits).ok).toBe(true);
    expectCode(decodeClientMessage(msgpackCodec, packValue(depth5), true, limits), Errors.TOO_DEEP.code);
  });

  it('very deep input under the default limit is rejected without a stack overflow escaping', () => {
    const n = 200_000;
    const json = `{"type":"heartbeat","status":"ok","metadata":{"x":${'['.repeat(n)}${']'.repeat(n)}}}`;
    expectCode(decodeClientMessage(jsonCodec, json, false), Errors.TOO_DEEP.code);
    const mp = Buffer.concat([Buffer.from([0x81, 0xa1, 0x78]), Buffer.alloc(n, 0x91), Buffer.from([0xc0])]);
    expectCode(decodeClientMessage(msgpackCodec, mp, true), Errors.TOO_DEEP.code);
    // The msgpack decoder is still healthy afterwards.
    expect(decodeClientMessage(msgpackCodec, packValue(HB), true).ok).toBe(true);
  });
});

describe('prototype keys', () => {
  const jsonCases = [
    '{"__proto__":{"polluted":1},"type":"heartbeat","status":"ok"}',
    '{"type":"heartbeat","status":"ok","metadata":{"a":{"__proto__":{"polluted":1}}}}',
    '{"type":"command_results","status":"ok","action_results":[{"status":"success","result":[{"__proto__":{"polluted":1}}]}]}',
    '{"constructor":{"prototype":{"polluted":1}},"type":"heartbeat","status":"ok"}',
    '{"type":"heartbeat","status":"ok","metadata":{"x":[{"constructor":{"prototype":{"polluted":1}}}]}}',
  ];

  it('JSON: __proto__ and constructor keys are rejected at any depth', () => {
    for (const raw of jsonCases) {
      const e = expectCode(decodeClientMessage(jsonCodec, raw, false), Errors.FORBIDDEN_KEY.code);
      expect(e.message).toMatch(/'(__proto__|constructor)'/);
      expectCode(decodeServerMessage(jsonCodec, enc(raw), true), Errors.FORBIDDEN_KEY.code);
    }
  });

  it('JSON: the same words as values are fine', () => {
    expect(
      decodeClientMessage(
        jsonCodec,
        '{"type":"heartbeat","status":"ok","client_id":"__proto__","metadata":{"k":"constructor"}}',
        false,
      ).ok,
    ).toBe(true);
  });

  it('msgpack: __proto__ and constructor keys are rejected at any depth and in any string encoding', () => {
    for (const raw of jsonCases) {
      const packed = packValue(JSON.parse(raw));
      expectCode(decodeClientMessage(msgpackCodec, packed, true), Errors.FORBIDDEN_KEY.code);
    }
    // `__proto__` as a str8 key (d9 09 ...) instead of fixstr.
    const b = Buffer.from(packValue({ ...HB, metadata: { abcdefghi: { polluted: 1 } } }));
    const at = b.indexOf(Buffer.from([0xa9, ...Buffer.from('abcdefghi')]));
    const str8 = Buffer.concat([
      b.subarray(0, at),
      Buffer.from([0xd9, 9]),
      Buffer.from('__proto__'),
      b.subarray(at + 10),
    ]);
    expectCode(decodeClientMessage(msgpackCodec, str8, true), Errors.FORBIDDEN_KEY.code);
  });

  it('Object.prototype is not polluted afterwards', () => {
    for (const raw of jsonCases) {
      decodeClientMessage(jsonCodec, raw, false);
      decodeClientMessage(msgpackCodec, packValue(JSON.parse(raw)), true);
    }
    expect(Object.prototype).not.toHaveProperty('polluted');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype)).not.toContain('polluted');
  });
});

describe('msgpack specifics', () => {
  it('rejects empty, truncated, and non-map frames with catalogue codes', () => {
    expectCode(decodeClientMessage(msgpackCodec, new Uint8Array(0), true), Errors.INVALID_MSGPACK.code);
    const full = packValue(HB);
    expectCode(
      decodeClientMessage(msgpackCodec, full.subarray(0, full.byteLength - 3), true),
      Errors.INVALID_MSGPACK.code,
    );
    expectCode(decodeClientMessage(msgpackCodec, packValue([HB]), true), Errors.NOT_AN_OBJECT.code);
    expectCode(decodeClientMessage(msgpackCodec, packValue('heartbeat'), true), Errors.NOT_AN_OBJECT.code);
    expectCode(
      decodeClientMessage(msgpackCodec, packValue(new Uint8Array([1, 2])), true),
      Errors.UNSUPPORTED_VALUE.code, // a bin: refused before it is unpacked
    );
  });

  it('a timestamp extension (a Date) is refused as a value JSON cannot carry, and says so', () => {
    const r = decodeClientMessage(msgpackCodec, packValue({ ...HB, metadata: { when: new Date(0) } }), true);
    const e = expectCode(r, Errors.UNSUPPORTED_VALUE.code);
    expect(e.message).toBe(
      'Unsupported value at depth 3: a timestamp (send times as ISO 8601 strings); AIP messages carry JSON values only',
    );
  });
});
