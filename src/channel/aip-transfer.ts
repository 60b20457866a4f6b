/**
 * UFO parity (ufo-aip.md §10): AIP's binary message and chunked file transfer, as a pure per-connection state
 * machine. Feed it parsed text-frame objects and binary frames in arrival order; it returns events or an error.
 *
 * - `binary_data` text frame, then exactly one binary frame; `size` (when present) must match:
 *   "Size mismatch: expected X bytes, got Y bytes".
 * - `file_transfer_start` → `total_chunks` × (`binary_data` with `chunk_num`, binary) → `file_transfer_complete`;
 *   MD5 of the whole file is checked when `checksum` is present: "Checksum mismatch: expected ..., got ...".
 * The sender half builds the same frame sequence.
 */
import { createHash, type Hash } from 'node:crypto';
import {
  aipError,
  BinaryMetadata,
  FileTransferComplete,
  FileTransferStart,
  type AipError,
} from '../../protocol/index.js';

export type TransferEvent =
  | { type: 'binary'; metadata: Record<string, unknown>; data: Uint8Array }
  | { type: 'file_start'; start: FileTransferStart }
  | { type: 'file_chunk'; filename: string; chunkNum: number; data: Uint8Array }
  | { type: 'file_complete'; filename: string; size: number; totalChunks: number; checksum: string };

export type TransferResult = { ok: true; events: TransferEvent[] } | { ok: false; error: AipError };

type State =
  | { s: 'idle' }
  | { s: 'await_binary'; meta: Record<string, unknown> }
  | {
      s: 'file';
      start: FileTransferStart;
      received: number;
      bytes: number;
      md5: Hash;
      chunkMeta: Record<string, unknown> | null;
    };

export interface TransferReceiverOptions {
  /** Check `size` and checksums (UFO's default). */
  readonly validate?: boolean;
  /** Largest single binary frame accepted. Default 100 MiB (UFO's frame limit). */
  readonly maxBytes?: number;
}

const TRANSFER_TYPES = new Set(['binary_data', 'file_transfer_start', 'file_transfer_complete']);

/** True when a parsed text frame is a transfer control frame rather than an AIP envelope. */
export function isTransferFrame(obj: Record<string, unknown>): boolean {
  return typeof obj.type === 'string' && TRANSFER_TYPES.has(obj.type);
}

export class AipTransferReceiver {
  private state: State = { s: 'idle' };
  private readonly validate: boolean;
  private readonly maxBytes: number;

  constructor(opts: TransferReceiverOptions = {}) {
    this.validate = opts.validate ?? true;
    this.maxBytes = opts.maxBytes ?? 100 * 1024 * 1024;
  }

  /** True between a metadata frame and its binary frame, or inside a file transfer. */
  get busy(): boolean {
    return this.state.s !== 'idle';
  }

  /** A parsed text frame. After an error the receiver is back to idle. */
  text(obj: Record<string, unknown>): TransferResult {
    const st = this.state;
    if (st.s === 'await_binary' || (st.s === 'file' && st.chunkMeta !== null))
      return this.fail(aipError('TRANSFER_EXPECTED_BINARY'));
    if (st.s === 'file') {
      if (st.received < st.start.total_chunks) {
        if (obj.type !== 'binary_data')
          return this.fail(
            aipError('TRANSFER_WRONG_TYPE', { expected: 'binary_data', got: String(obj.type) }),
          );
        if (obj.chunk_num !== st.received)
          return this.fail(
            aipError('TRANSFER_BAD_METADATA', {
              detail: `chunk_num ${String(obj.chunk_num)}, expected ${st.received}`,
            }),
          );
        st.chunkMeta = obj;
        return ok([]);
      }
      const done = FileTransferComplete.safeParse(obj);
      if (obj.type !== 'file_transfer_complete')
        return this.fail(
          aipError('TRANSFER_WRONG_TYPE', { expected: 'file_transfer_complete', got: String(obj.type) }),
        );
      if (!done.success)
        return this.fail(
          aipError('TRANSFER_BAD_METADATA', { detail: done.error.issues[0]?.message ?? 'invalid' }),
        );
      const got = st.md5.digest('hex');
      this.state = { s: 'idle' };
      const want = done.data.checksum;
      if (this.validate && typeof want === 'string' && want.toLowerCase() !== got)
        return this.fail(aipError('TRANSFER_CHECKSUM_MISMATCH', { expected: want, got }));
      return ok([
        {
          type: 'file_complete',
          filename: st.start.filename,
          size: st.bytes,
          totalChunks: st.received,
          checksum: got,
        },
      ]);
    }
    if (obj.type === 'file_transfer_start') {
      const start = FileTransferStart.safeParse(obj);
      if (!start.success)
        return this.fail(
          aipError('TRANSFER_BAD_METADATA', { detail: start.error.issues[0]?.message ?? 'invalid' }),
        );
      this.state = {
        s: 'file',
        start: start.data,
        received: 0,
        bytes: 0,
        md5: createHash('md5'),
        chunkMeta: null,
      };
      return ok([{ type: 'file_start', start: start.data }]);
    }
    if (obj.type === 'file_transfer_complete')
      return this.fail(
        aipError('TRANSFER_WRONG_TYPE', { expected: 'file_transfer_start', got: 'file_transfer_complete' }),
      );
    // UFO only warns when type is not binary_data; the metadata still announces a binary frame.
    const meta = BinaryMetadata.safeParse(obj);
    if (!meta.success)
      return this.fail(
        aipError('TRANSFER_BAD_METADATA', { detail: meta.error.issues[0]?.message ?? 'invalid' }),
      );
    this.state = { s: 'await_binary', meta: obj };
    return ok([]);
  }

  /** One binary frame. */
  binary(data: Uint8Array): TransferResult {
    const st = this.state;
    const meta = st.s === 'await_binary' ? st.meta : st.s === 'file' ? st.chunkMeta : null;
    if (meta === null) return this.fail(aipError('TRANSFER_UNEXPECTED_BINARY'));
    if (data.byteLength > this.maxBytes)
      return this.fail(aipError('FRAME_TOO_LARGE', { size: data.byteLength, max: this.maxBytes }));
    const size = meta.size;
    if (this.validate && typeof size === 'number' && size !== data.byteLength)
      return this.fail(aipError('TRANSFER_SIZE_MISMATCH', { expected: size, got: data.byteLength }));
    if (st.s === 'await_binary') {
      this.state = { s: 'idle' };
      return ok([{ type: 'binary', metadata: meta, data }]);
    }
    if (st.s !== 'file') return this.fail(aipError('TRANSFER_UNEXPECTED_BINARY'));
    st.md5.update(data);
    st.bytes += data.byteLength;
    const chunkNum = st.received++;
    st.chunkMeta = null;
    return ok([{ type: 'file_chunk', filename: st.start.filename, chunkNum, data }]);
  }

  /** Drops any transfer in progress (e.g. on disconnect). */
  reset(): void {
    this.state = { s: 'idle' };
  }

  private fail(error: AipError): TransferResult {
    this.state = { s: 'idle' };
    return { ok: false, error };
  }
}

function ok(events: TransferEvent[]): TransferResult {
  return { ok: true, events };
}

export type OutFrame = { text: string } | { binary: Uint8Array };

/** One binary message: the metadata text frame (type/size/timestamp overwritten as UFO does) and the bytes. */
export function binaryMessageFrames(
  data: Uint8Array,
  metadata: Record<string, unknown> = {},
): [OutFrame, OutFrame] {
  const meta = {
    ...metadata,
    type: 'binary_data',
    size: data.byteLength,
    timestamp: new Date().toISOString(),
  };
  return [{ text: JSON.stringify(meta) }, { binary: data }];
}

/** A chunked file transfer: start, chunk pairs, complete (with MD5 unless `checksum: false`). */
export function* fileTransferFrames(
  filename: string,
  data: Uint8Array,
  opts: { chunkSize?: number; mimeType?: string | null; checksum?: boolean } = {},
): Generator<OutFrame> {
  const chunkSize = opts.chunkSize ?? 1024 * 1024;
  const total = Math.ceil(data.byteLength / chunkSize);
  yield {
    text: JSON.stringify({
      type: 'file_transfer_start',
      filename,
      size: data.byteLength,
      chunk_size: chunkSize,
      total_chunks: total,
      mime_type: opts.mimeType ?? null,
    }),
  };
  const md5 = createHash('md5');
  for (let i = 0; i < total; i++) {
    const chunk = data.subarray(i * chunkSize, Math.min(data.byteLength, (i + 1) * chunkSize));
    md5.update(chunk);
    yield* binaryMessageFrames(chunk, { chunk_num: i, chunk_size: chunk.byteLength });
  }
  const complete: Record<string, unknown> = { type: 'file_transfer_complete', filename, total_chunks: total };
  if (opts.checksum !== false) complete.checksum = md5.digest('hex');
  yield { text: JSON.stringify(complete) };
}
