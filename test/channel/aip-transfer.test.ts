import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EMPTY_MD5 } from '../../protocol/index.js';
import {
  AipTransferReceiver,
  binaryMessageFrames,
  fileTransferFrames,
  isTransferFrame,
  type OutFrame,
  type TransferEvent,
} from '../../src/channel/aip-transfer.js';
import { randomBytes } from './helpers.js';

/** Feeds frames as a connection would (text frames parsed as JSON). Returns events, or the first error. */
function feed(
  rx: AipTransferReceiver,
  frames: Iterable<OutFrame>,
): { events: TransferEvent[]; error: string | null } {
  const events: TransferEvent[] = [];
  for (const f of frames) {
    const r = 'text' in f ? rx.text(JSON.parse(f.text) as Record<string, unknown>) : rx.binary(f.binary);
    if (!r.ok) return { events, error: r.error.message };
    events.push(...r.events);
  }
  return { events, error: null };
}

describe('AIP binary and file transfer (ufo-aip.md §10)', () => {
  it('binary message: metadata text frame then one binary frame', () => {
    const data = randomBytes(1000);
    const frames = binaryMessageFrames(data, { filename: 'x.png', size: 1, type: 'other' });
    const meta = JSON.parse((frames[0] as { text: string }).text) as Record<string, unknown>;
    expect(meta).toMatchObject({ filename: 'x.png', type: 'binary_data', size: 1000 });
    expect(typeof meta.timestamp).toBe('string');
    expect(isTransferFrame(meta)).toBe(true);
    expect(isTransferFrame({ type: 'task' })).toBe(false);
    const rx = new AipTransferReceiver();
    const { events, error } = feed(rx, frames);
    expect(error).toBeNull();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'binary', metadata: { filename: 'x.png' } });
    expect(Buffer.from((events[0] as { data: Uint8Array }).data).equals(Buffer.from(data))).toBe(true);
    expect(rx.busy).toBe(false);
  });

  it("size mismatch uses UFO's text", () => {
    const rx = new AipTransferReceiver();
    const { error } = feed(rx, [
      { text: JSON.stringify({ type: 'binary_data', size: 10 }) },
      { binary: new Uint8Array(7) },
    ]);
    expect(error).toBe('Size mismatch: expected 10 bytes, got 7 bytes');
    const lax = new AipTransferReceiver({ validate: false });
    expect(
      feed(lax, [{ text: JSON.stringify({ type: 'binary_data', size: 10 }) }, { binary: new Uint8Array(7) }])
        .error,
    ).toBeNull();
  });

  it('a text frame where the binary frame belongs, or a stray binary frame, is an error', () => {
    const rx = new AipTransferReceiver();
    expect(feed(rx, [{ text: '{"type":"binary_data"}' }, { text: '{"type":"binary_data"}' }]).error).toBe(
      'Expected binary WebSocket frame, but received text frame',
    );
    expect(rx.binary(new Uint8Array(1))).toMatchObject({ ok: false, error: { code: 7053 } });
  });

  it('chunked file transfer round trip with MD5', () => {
    const data = randomBytes(2_500_000, 5);
    const frames = [
      ...fileTransferFrames('f.bin', data, { chunkSize: 1024 * 1024, mimeType: 'application/octet-stream' }),
    ];
    expect(frames).toHaveLength(1 + 3 * 2 + 1);
    expect(JSON.parse((frames[0] as { text: string }).text)).toEqual({
      type: 'file_transfer_start',
      filename: 'f.bin',
      size: 2_500_000,
      chunk_size: 1048576,
      total_chunks: 3,
      mime_type: 'application/octet-stream',
    });
    const md5 = createHash('md5').update(data).digest('hex');
    expect(JSON.parse((frames.at(-1) as { text: string }).text)).toEqual({
      type: 'file_transfer_complete',
      filename: 'f.bin',
      total_chunks: 3,
      checksum: md5,
    });
    const { events, error } = feed(new AipTransferReceiver(), frames);
    expect(error).toBeNull();
    const chunks = events.filter((e) => e.type === 'file_chunk');
    expect(chunks.map((c) => c.chunkNum)).toEqual([0, 1, 2]);
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(Buffer.from(data))).toBe(true);
    expect(events.at(-1)).toEqual({
      type: 'file_complete',
      filename: 'f.bin',
      size: 2_500_000,
      totalChunks: 3,
      checksum: md5,
    });
  });

  it('empty file: zero chunks and the empty MD5', () => {
    const frames = [...fileTransferFrames('e', new Uint8Array(0))];
    expect(frames).toHaveLength(2);
    const { events } = feed(new AipTransferReceiver(), frames);
    expect(events.at(-1)).toMatchObject({ type: 'file_complete', size: 0, checksum: EMPTY_MD5 });
  });

  it("MD5 mismatch uses UFO's text; no checksum means no check", () => {
    const data = randomBytes(5000);
    const frames = [...fileTransferFrames('f', data, { chunkSize: 2048 })];
    const last = JSON.parse((frames.at(-1) as { text: string }).text) as Record<string, unknown>;
    const good = String(last.checksum);
    frames[frames.length - 1] = { text: JSON.stringify({ ...last, checksum: 'deadbeef' }) };
    expect(feed(new AipTransferReceiver(), frames).error).toBe(
      `Checksum mismatch: expected deadbeef, got ${good}`,
    );
    const unchecked = [...fileTransferFrames('f', data, { chunkSize: 2048, checksum: false })];
    expect(JSON.parse((unchecked.at(-1) as { text: string }).text)).not.toHaveProperty('checksum');
    expect(feed(new AipTransferReceiver(), unchecked).error).toBeNull();
  });

  it('a wrong frame type inside a transfer is an error and resets the receiver', () => {
    const rx = new AipTransferReceiver();
    const frames = [...fileTransferFrames('f', randomBytes(10), { chunkSize: 4 })];
    const { error } = feed(rx, [
      frames[0]!,
      { text: JSON.stringify({ type: 'file_transfer_complete', filename: 'f', total_chunks: 0 }) },
    ]);
    expect(error).toBe("Expected message type 'binary_data', got 'file_transfer_complete'");
    expect(rx.busy).toBe(false);
  });
});
