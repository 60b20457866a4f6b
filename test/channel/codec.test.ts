import { describe, expect, it } from 'vitest';
import {
  ChannelOp,
  decodeChannelFrame,
  encodeAccept,
  encodeAck,
  encodeData,
  encodeFin,
  encodeOpen,
  encodeReject,
  encodeReset,
  isChannelFrame,
} from '../../protocol/channel.js';
import { jsonCodec, msgpackCodec } from '../../protocol/index.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('channel frame codec', () => {
  it('OPEN: marker, op, id, window, JSON body', () => {
    const f = encodeOpen(3, 65536, { session_id: 's1', kind: 'stream', params: { command: 'cat' } });
    expect(hex(f.subarray(0, 10))).toBe('c1' + '01' + '00000003' + '00010000');
    expect(Buffer.from(f.subarray(10)).toString()).toBe(
      '{"session_id":"s1","kind":"stream","params":{"command":"cat"}}',
    );
    const d = decodeChannelFrame(f);
    expect(d).toEqual({
      ok: true,
      value: {
        op: ChannelOp.OPEN,
        channel: 3,
        window: 65536,
        body: { session_id: 's1', kind: 'stream', params: { command: 'cat' } },
      },
    });
  });

  it('ACCEPT carries the window', () => {
    const f = encodeAccept(0xfffffffe, 1);
    expect(hex(f)).toBe('c102fffffffe00000001');
    expect(decodeChannelFrame(f)).toEqual({
      ok: true,
      value: { op: ChannelOp.ACCEPT, channel: 0xfffffffe, window: 1 },
    });
  });

  it('REJECT and RESET carry code and reason', () => {
    const r = encodeReject(5, 7002, 'no');
    expect(hex(r)).toBe('c10300000005' + '1b5a' + '6e6f');
    expect(decodeChannelFrame(r)).toEqual({
      ok: true,
      value: { op: ChannelOp.REJECT, channel: 5, code: 7002, reason: 'no' },
    });
    const x = encodeReset(2, 7009, 'gone é');
    expect(x[1]).toBe(7);
    expect(decodeChannelFrame(x)).toEqual({
      ok: true,
      value: { op: ChannelOp.RESET, channel: 2, code: 7009, reason: 'gone é' },
    });
  });

  it('DATA carries seq and payload', () => {
    const f = encodeData(1, 258, new Uint8Array([0xc1, 0, 0xff]));
    expect(hex(f)).toBe('c10400000001' + '00000102' + 'c100ff');
    const d = decodeChannelFrame(f);
    expect(d.ok && d.value.op === ChannelOp.DATA && [d.value.seq, hex(d.value.payload)]).toEqual([
      258,
      'c100ff',
    ]);
  });

  it('ACK carries cumulative seq, 64-bit consumed bytes and window', () => {
    const big = 2 ** 40 + 5;
    const f = encodeAck(7, 9, big, 4096);
    expect(hex(f)).toBe('c10500000007' + '00000009' + '0000010000000005' + '00001000');
    expect(decodeChannelFrame(f)).toEqual({
      ok: true,
      value: { op: ChannelOp.ACK, channel: 7, seq: 9, consumed: big, window: 4096 },
    });
  });

  it('FIN carries the final seq and an optional trailer', () => {
    expect(hex(encodeFin(1, 4))).toBe('c1060000000100000004');
    expect(decodeChannelFrame(encodeFin(1, 4))).toEqual({
      ok: true,
      value: { op: ChannelOp.FIN, channel: 1, seq: 4, trailer: null },
    });
    expect(decodeChannelFrame(encodeFin(1, 4, { exit_code: 3 }))).toEqual({
      ok: true,
      value: { op: ChannelOp.FIN, channel: 1, seq: 4, trailer: { exit_code: 3 } },
    });
  });

  it('rejects bad frames with CHANNEL_BAD_FRAME instead of throwing', () => {
    const cases: Uint8Array[] = [
      new Uint8Array([]),
      new Uint8Array([0xc1, 1, 0, 0]),
      new Uint8Array([0x7b, 4, 0, 0, 0, 1, 0, 0, 0, 0, 1]),
      new Uint8Array([0xc1, 99, 0, 0, 0, 1]),
      new Uint8Array([0xc1, 4, 0, 0, 0, 1, 0, 0, 0]),
      encodeAck(1, 1, 1, 1).subarray(0, 21),
      new Uint8Array([...encodeAck(1, 1, 1, 1), 0]),
      new Uint8Array([...encodeAccept(1, 1).subarray(0, 6), 0, 0, 0, 1, ...Buffer.from('{')]).map((b, i) =>
        i === 1 ? 1 : b,
      ),
      new Uint8Array([...encodeFin(1, 0), 0xff]),
      new Uint8Array([...encodeReset(1, 1, ''), 0xc3, 0x28]),
      encodeOpen(1, 1, { session_id: 's', kind: 'stream', params: {} }).map((b, i, a) =>
        i === a.length - 3 ? 0x20 : b,
      ),
    ];
    for (const c of cases) {
      const d = decodeChannelFrame(c);
      expect(d.ok).toBe(false);
      if (!d.ok) expect(d.error.code).toBe(7000);
    }
    const badKind = Buffer.concat([
      encodeAccept(1, 1).subarray(0, 10),
      Buffer.from('{"session_id":"s","kind":"ftp","params":{}}'),
    ]);
    badKind[1] = 1;
    const d = decodeChannelFrame(badKind);
    expect(d.ok ? '' : d.error.message).toMatch(/OPEN: kind/);
  });

  it('0xC1 frames never decode as AIP in either codec, and are recognised by their first byte', () => {
    const f = encodeData(1, 0, new Uint8Array([1, 2, 3]));
    expect(isChannelFrame(f)).toBe(true);
    expect(isChannelFrame(Buffer.from('{"type":"x"}'))).toBe(false);
    expect(jsonCodec.decode(f, true).ok).toBe(false);
    expect(msgpackCodec.decode(f, true).ok).toBe(false);
  });
});
