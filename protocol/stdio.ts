/**
 * Stdio framing: what a `stream` channel carries when it is opened with `params.framing = "stdio"` (remote
 * execution and shells). Inside the channel's ordered byte stream, each record is
 *
 *   offset 0  u8   tag
 *   offset 1  u32  payload length (big-endian), at most MAX_STDIO_PAYLOAD
 *   offset 5  ...  payload
 *
 * Records may be split across DATA frames and several may share one; `StdioDecoder` reassembles them.
 *
 *   tag  direction           payload
 *   0    STDIN   → device    bytes for the process's stdin (or the PTY)
 *   1    STDOUT  → server    bytes the process wrote to stdout (all output, with a PTY)
 *   2    STDERR  → server    bytes the process wrote to stderr (pipes only)
 *   3    RESIZE  → device    UTF-8 JSON {"rows": R, "cols": C} (a PTY is resized; pipes ignore it)
 *   4    EOF     → device    empty: stdin is closed (with a PTY, ^D is written)
 *   5    SIGNAL  → device    UTF-8 signal name, e.g. "SIGINT"; sent to the process group
 *
 * The process's end is the channel's FIN, whose trailer is {exit_code, signal, pty}. A RESET from the server
 * kills the whole process group on the device.
 */
import { aipError, type AipError } from './errors.js';

export const StdioTag = { STDIN: 0, STDOUT: 1, STDERR: 2, RESIZE: 3, EOF: 4, SIGNAL: 5 } as const;
export type StdioTag = (typeof StdioTag)[keyof typeof StdioTag];

/** Largest payload of one record (a bigger write is split into several records). */
export const MAX_STDIO_PAYLOAD = 256 * 1024;
export const STDIO_HEADER_BYTES = 5;

/** Signals a SIGNAL record may name. */
export const STDIO_SIGNALS = [
  'SIGINT',
  'SIGTERM',
  'SIGKILL',
  'SIGHUP',
  'SIGQUIT',
  'SIGTSTP',
  'SIGCONT',
] as const;

export interface StdioRecord {
  readonly tag: StdioTag;
  readonly payload: Uint8Array;
}

const enc = new TextEncoder();

/** One record; a payload over MAX_STDIO_PAYLOAD must be split by the caller (`encodeStdioChunks` does). */
export function encodeStdio(tag: StdioTag, payload: Uint8Array | string = new Uint8Array(0)): Uint8Array {
  const p = typeof payload === 'string' ? enc.encode(payload) : payload;
  if (p.byteLength > MAX_STDIO_PAYLOAD) throw new RangeError(`stdio payload over ${MAX_STDIO_PAYLOAD} bytes`);
  const out = new Uint8Array(STDIO_HEADER_BYTES + p.byteLength);
  out[0] = tag;
  new DataView(out.buffer).setUint32(1, p.byteLength);
  out.set(p, STDIO_HEADER_BYTES);
  return out;
}

/** Records for `bytes` of one tag, split at MAX_STDIO_PAYLOAD. */
export function encodeStdioChunks(tag: StdioTag, bytes: Uint8Array): Uint8Array[] {
  if (bytes.byteLength <= MAX_STDIO_PAYLOAD) return [encodeStdio(tag, bytes)];
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.byteLength; i += MAX_STDIO_PAYLOAD)
    out.push(encodeStdio(tag, bytes.subarray(i, i + MAX_STDIO_PAYLOAD)));
  return out;
}

export function encodeResize(rows: number, cols: number): Uint8Array {
  return encodeStdio(StdioTag.RESIZE, JSON.stringify({ rows, cols }));
}

/** Parses a RESIZE payload; null when it is not `{rows, cols}` with integers in 1–65535. */
export function decodeResize(payload: Uint8Array): { rows: number; cols: number } | null {
  try {
    const v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload)) as unknown;
    if (v === null || typeof v !== 'object') return null;
    const { rows, cols } = v as { rows?: unknown; cols?: unknown };
    const ok = (n: unknown): n is number =>
      Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;
    return ok(rows) && ok(cols) ? { rows, cols } : null;
  } catch {
    return null;
  }
}

/**
 * Incremental decoder. Holds at most one partial record (≤ MAX_STDIO_PAYLOAD + header), so its memory is bounded
 * whatever the peer sends; an unknown tag or an oversized length is an error and the decoder stops.
 */
export class StdioDecoder {
  private buf: Uint8Array = new Uint8Array(0);
  private failed: AipError | null = null;

  /** Feeds bytes; returns the complete records, or the error that stopped the decoder. */
  push(chunk: Uint8Array): StdioRecord[] | AipError {
    if (this.failed) return this.failed;
    let b: Uint8Array;
    if (this.buf.byteLength === 0) b = chunk;
    else {
      b = new Uint8Array(this.buf.byteLength + chunk.byteLength);
      b.set(this.buf, 0);
      b.set(chunk, this.buf.byteLength);
    }
    const out: StdioRecord[] = [];
    let pos = 0;
    while (b.byteLength - pos >= STDIO_HEADER_BYTES) {
      const tag = b[pos]!;
      const len = new DataView(b.buffer, b.byteOffset + pos + 1, 4).getUint32(0);
      if (tag > StdioTag.SIGNAL) return this.fail(`unknown stdio tag ${tag}`);
      if (len > MAX_STDIO_PAYLOAD) return this.fail(`stdio record of ${len} bytes over ${MAX_STDIO_PAYLOAD}`);
      if (b.byteLength - pos - STDIO_HEADER_BYTES < len) break;
      const start = pos + STDIO_HEADER_BYTES;
      out.push({ tag: tag as StdioTag, payload: b.slice(start, start + len) });
      pos = start + len;
    }
    this.buf = pos === b.byteLength ? new Uint8Array(0) : b.slice(pos);
    return out;
  }

  /** Bytes of an incomplete record held (0 at a record boundary). */
  get pendingBytes(): number {
    return this.buf.byteLength;
  }

  private fail(detail: string): AipError {
    this.buf = new Uint8Array(0);
    this.failed = aipError('STDIO_BAD_RECORD', { detail });
    return this.failed;
  }
}
