import { describe, expect, it } from 'vitest';
import {
  AipError,
  decodeResize,
  encodeResize,
  encodeStdio,
  encodeStdioChunks,
  MAX_STDIO_PAYLOAD,
  StdioDecoder,
  StdioTag,
} from '../../protocol/index.js';

describe('stdio records (raw bytes)', () => {
  it('encodes tag, big-endian length and payload', () => {
    expect([...encodeStdio(StdioTag.STDERR, 'hi')]).toEqual([2, 0, 0, 0, 2, 0x68, 0x69]);
    expect([...encodeStdio(StdioTag.EOF)]).toEqual([4, 0, 0, 0, 0]);
  });

  it('reassembles records split across chunks, one byte at a time', () => {
    const bytes = new Uint8Array([...encodeStdio(StdioTag.STDOUT, 'hello'), ...encodeStdio(StdioTag.EOF)]);
    const d = new StdioDecoder();
    const got: string[] = [];
    for (const b of bytes) {
      const r = d.push(new Uint8Array([b]));
      if (r instanceof AipError) throw r;
      for (const rec of r) got.push(`${rec.tag}:${new TextDecoder().decode(rec.payload)}`);
    }
    expect(got).toEqual(['1:hello', '4:']);
    expect(d.pendingBytes).toBe(0);
  });

  it('decodes several records from one chunk', () => {
    const d = new StdioDecoder();
    const r = d.push(new Uint8Array([...encodeResize(40, 120), ...encodeStdio(StdioTag.STDIN, 'x')]));
    expect(r).not.toBeInstanceOf(AipError);
    const recs = r as { tag: number; payload: Uint8Array }[];
    expect(recs.map((x) => x.tag)).toEqual([StdioTag.RESIZE, StdioTag.STDIN]);
    expect(decodeResize(recs[0]!.payload)).toEqual({ rows: 40, cols: 120 });
  });

  it('refuses an unknown tag and an oversized length, and stays failed', () => {
    const bad = new StdioDecoder().push(new Uint8Array([9, 0, 0, 0, 0]));
    expect(bad).toBeInstanceOf(AipError);
    expect((bad as AipError).kind).toBe('STDIO_BAD_RECORD');
    const d = new StdioDecoder();
    const big = new Uint8Array(5);
    big[0] = 1;
    new DataView(big.buffer).setUint32(1, MAX_STDIO_PAYLOAD + 1);
    expect(d.push(big)).toBeInstanceOf(AipError);
    expect(d.push(encodeStdio(StdioTag.STDOUT, 'ok'))).toBeInstanceOf(AipError);
  });

  it('splits large writes into records of at most MAX_STDIO_PAYLOAD', () => {
    const recs = encodeStdioChunks(StdioTag.STDOUT, new Uint8Array(MAX_STDIO_PAYLOAD * 2 + 1));
    expect(recs.map((r) => r.byteLength - 5)).toEqual([MAX_STDIO_PAYLOAD, MAX_STDIO_PAYLOAD, 1]);
  });

  it('rejects resize payloads that are not two positive integers', () => {
    const t = (s: string): unknown => decodeResize(new TextEncoder().encode(s));
    expect(t('{"rows":0,"cols":80}')).toBeNull();
    expect(t('{"rows":24}')).toBeNull();
    expect(t('nope')).toBeNull();
    expect(t('{"rows":24,"cols":80}')).toEqual({ rows: 24, cols: 80 });
  });
});
