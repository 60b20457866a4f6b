/** The SSM ClientMessage codec on raw bytes (the contract's A1), and the smux v1 frame codec. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ackedSequence,
  ackPayload,
  decodeClientMessage,
  encodeAck,
  encodeChannelClosed,
  encodeClientMessage,
  flagOf,
  flagPayload,
  uuidFromWire,
  uuidToWire,
} from '../../src/ssm/codec.js';
import { encodeSmux, encodeSmuxData, SmuxCmd, SmuxDecoder } from '../../src/ssm/smux.js';

const VECTOR = `
00 00 00 74 6f 75 74 70 75 74 5f 73 74 72 65 61
6d 5f 64 61 74 61 20 20 20 20 20 20 20 20 20 20
20 20 20 20 00 00 00 01 00 00 01 8b cf e5 68 00
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01
a5 08 b5 f0 73 f3 1b 16 dd 01 e5 6b ff 48 48 3e
8f 43 43 46 64 8f 6b 96 df 89 dd a9 01 c5 17 6b
10 a6 d8 39 61 dd 3c 1a c8 8b 59 b2 dc 32 7a a4
00 00 00 01 00 00 00 02 68 69`;
const vector = Buffer.from(VECTOR.replace(/\s+/g, ''), 'hex');
const ID = 'dd01e56b-ff48-483e-a508-b5f073f31b16';

const frame = (over: Partial<Parameters<typeof encodeClientMessage>[0]> = {}): Buffer =>
  Buffer.from(
    encodeClientMessage({
      messageType: 'input_stream_data',
      createdDate: 1700000000000n,
      sequenceNumber: 4n,
      payloadType: 1,
      payload: Buffer.from('data'),
      ...over,
    }),
  );

describe('ClientMessage encoding', () => {
  it('writes the reference test vector byte for byte (122 bytes)', () => {
    const out = encodeClientMessage({
      messageType: 'output_stream_data',
      sequenceNumber: 0n,
      flags: 1n,
      createdDate: 1700000000000n,
      messageId: ID,
      payloadType: 1,
      payload: Buffer.from('hi'),
    });
    expect(out.byteLength).toBe(122);
    expect(Buffer.from(out).toString('hex')).toBe(vector.toString('hex'));
  });

  it('reads the test vector back, every field', () => {
    const d = decodeClientMessage(vector);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.message).toMatchObject({
      messageType: 'output_stream_data',
      schemaVersion: 1,
      createdDate: 1700000000000n,
      sequenceNumber: 0n,
      flags: 1n,
      messageId: ID,
      payloadType: 1,
    });
    expect(Buffer.from(d.message.payload).toString()).toBe('hi');
  });

  it('swaps the UUID halves on the wire and back', () => {
    const wire = Buffer.from(uuidToWire(ID)).toString('hex');
    expect(wire).toBe('a508b5f073f31b16dd01e56bff48483e');
    expect(uuidFromWire(uuidToWire(ID))).toBe(ID);
  });

  it('puts the SHA-256 of the payload at 80..111, also for an empty payload', () => {
    const f = frame({ payload: Buffer.alloc(0) });
    expect(f.subarray(80, 112).toString('hex')).toBe(
      createHash('sha256').update(Buffer.alloc(0)).digest('hex'),
    );
    expect(f.length).toBe(120);
    expect(f.readUInt32BE(0)).toBe(116);
  });

  it('never writes CreatedDate 0', () => {
    expect(frame({ createdDate: 0n }).readBigUInt64BE(40)).not.toBe(0n);
  });
});

describe('ClientMessage validation (as the plugin reads)', () => {
  const reason = (b: Buffer): string => {
    const d = decodeClientMessage(b);
    return d.ok ? 'ok' : d.reason;
  };

  it('drops frames shorter than 120 bytes (116–119 would panic the plugin reader)', () => {
    expect(reason(frame().subarray(0, 100))).toMatch(/shorter than 120/);
    expect(reason(frame().subarray(0, 118))).toMatch(/shorter than 120/);
  });

  it('drops a header length other than 116, zero first', () => {
    const f = frame();
    f.writeUInt32BE(0, 0);
    expect(reason(f)).toBe('HeaderLength cannot be zero');
    f.writeUInt32BE(200, 0);
    expect(reason(f)).toMatch(/HeaderLength is 200/);
  });

  it('drops trailing bytes beyond PayloadLength', () => {
    expect(reason(Buffer.concat([frame(), Buffer.from('x')]))).toMatch(
      /PayloadLength 4 does not match the 5/,
    );
  });

  it('validates in order: header length, message type, created date, digest', () => {
    const f = frame();
    f.fill(0x20, 4, 36);
    f.writeBigUInt64BE(0n, 40);
    f[120] = 0;
    expect(reason(f)).toBe('MessageType is missing');
    const g = frame();
    g.writeBigUInt64BE(0n, 40);
    g[120] = 0;
    expect(reason(g)).toBe('CreatedDate is missing');
    const h = frame();
    h[120] = 0;
    expect(reason(h)).toBe('payload Hash is not valid');
  });

  it('accepts NUL-padded message types and skips the digest for an empty payload', () => {
    const f = frame({ payload: Buffer.alloc(0) });
    f.fill(0, 4 + 'input_stream_data'.length, 36);
    f.fill(0xff, 80, 112); // wrong digest, but no payload: not checked
    const d = decodeClientMessage(f);
    expect(d.ok && d.message.messageType).toBe('input_stream_data');
  });

  it('lets publication messages through without validation', () => {
    const f = frame({ messageType: 'pause_publication' });
    f.writeUInt32BE(0, 0);
    f.writeBigUInt64BE(0n, 40);
    f[120] = 0;
    expect(reason(f)).toBe('ok');
  });
});

describe('acknowledge, channel_closed and flags', () => {
  it('acks with the exact JSON field names, Flags 3 and seq 0', () => {
    const m = { messageType: 'input_stream_data', messageId: ID, sequenceNumber: 7n };
    expect(JSON.parse(Buffer.from(ackPayload(m)).toString())).toEqual({
      AcknowledgedMessageType: 'input_stream_data',
      AcknowledgedMessageId: ID,
      AcknowledgedMessageSequenceNumber: 7,
      IsSequentialMessage: true,
    });
    const d = decodeClientMessage(encodeAck(m));
    expect(
      d.ok && [d.message.messageType, d.message.flags, d.message.sequenceNumber, d.message.payloadType],
    ).toEqual(['acknowledge', 3n, 0n, 0]);
    expect(ackedSequence(ackPayload(m))).toBe(7n);
    expect(ackedSequence(Buffer.from('{"AcknowledgedMessageSequenceNumber":"7"}'))).toBeNull();
    expect(ackedSequence(Buffer.from('not json'))).toBeNull();
  });

  it('writes channel_closed with Output and CreatedDate as a string', () => {
    const d = decodeClientMessage(encodeChannelClosed('s-1', 'why'));
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.message.messageType).toBe('channel_closed');
    const j = JSON.parse(Buffer.from(d.message.payload).toString()) as Record<string, unknown>;
    expect(j).toMatchObject({
      SessionId: 's-1',
      MessageType: 'channel_closed',
      SchemaVersion: 1,
      Output: 'why',
    });
    expect(typeof j.CreatedDate).toBe('string');
  });

  it('carries a flag as one uint32 BE', () => {
    expect(Buffer.from(flagPayload(3)).toString('hex')).toBe('00000003');
    expect(flagOf(flagPayload(2))).toBe(2);
    expect(flagOf(new Uint8Array(3))).toBeNull();
  });
});

describe('smux v1 frames', () => {
  it('encodes ver=1 | cmd | len u16 LE | sid u32 LE | data', () => {
    expect(Buffer.from(encodeSmux(SmuxCmd.PSH, 3, Buffer.from('ab'))).toString('hex')).toBe(
      '0102020003000000' + '6162',
    );
    expect(Buffer.from(encodeSmux(SmuxCmd.SYN, 0x01020304)).toString('hex')).toBe('0100000004030201');
  });

  it('reassembles frames cut anywhere, and splits large data', () => {
    const frames = [
      encodeSmux(SmuxCmd.SYN, 3),
      ...encodeSmuxData(3, Buffer.alloc(70_000, 7), 32 * 1024),
      encodeSmux(SmuxCmd.FIN, 3),
    ];
    const stream = Buffer.concat(frames);
    const d = new SmuxDecoder();
    const got = [];
    for (let off = 0; off < stream.length; off += 1000) {
      const r = d.push(stream.subarray(off, off + 1000));
      if ('error' in r) throw new Error(r.error);
      got.push(...r);
    }
    expect(got.map((f) => f.cmd)).toEqual([0, 2, 2, 2, 1]);
    expect(got.reduce((n, f) => n + f.data.byteLength, 0)).toBe(70_000);
    expect(d.buffered).toBe(0);
  });

  it('refuses another version or an unknown command', () => {
    expect(new SmuxDecoder().push(Buffer.from('0200000003000000', 'hex'))).toEqual({
      error: 'smux version 2, only 1 is spoken',
    });
    expect(new SmuxDecoder().push(Buffer.from('0104000003000000', 'hex'))).toEqual({
      error: 'unknown smux command 4',
    });
  });
});
