/** File helpers shared by the device's file handlers and the controller's file client. */
import type { Hash } from 'node:crypto';
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { aipError, AipError } from '../../../protocol/index.js';

export const READ_CHUNK = 64 * 1024;

/** Hashes bytes [from, to) of an open file into `h`, optionally passing each chunk to `each`. */
export async function hashRange(
  fh: FileHandle,
  h: Hash,
  from: number,
  to: number,
  each?: (b: Uint8Array) => Promise<void>,
): Promise<void> {
  const buf = Buffer.allocUnsafe(READ_CHUNK);
  let pos = from;
  while (pos < to) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(READ_CHUNK, to - pos), pos);
    if (bytesRead === 0) throw aipError('FILE_IO', { detail: `file shrank while reading at ${pos}` });
    const chunk = buf.subarray(0, bytesRead);
    h.update(chunk);
    if (each) await each(Buffer.from(chunk));
    pos += bytesRead;
  }
}

export function asError(e: unknown): AipError {
  return e instanceof AipError
    ? e
    : aipError('FILE_IO', { detail: e instanceof Error ? e.message : String(e) });
}

/** What a path that is not a regular file is, for FILE_NOT_A_FILE. */
export function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symbolic link';
  return 'special file';
}
