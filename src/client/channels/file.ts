/**
 * Device side of `file` channels, confined to a root folder.
 *
 * download  params {op:'download', path, offset?}: device → `{size, offset}` record, bytes [offset, size),
 *           then `{sha256}` of the whole file; FIN.
 * upload    params {op:'upload', path, size, sha256, resume?}: device → `{offset}` record (bytes of `<path>.part`
 *           it already has when resuming, else 0); controller → bytes [offset, size), FIN; device checks size and
 *           SHA-256 of the whole part file, renames it into place and answers `{ok, size, sha256}` or
 *           `{ok:false, code, message}`; FIN. A broken upload keeps its `.part` file for a later resume.
 */
import { createHash, type Hash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { aipError, AipError } from '../../../protocol/index.js';
import type { ChannelEndpoint } from '../../channel/endpoint.js';
import type { IncomingChannel } from '../../channel/mux.js';
import { ChannelReader, encodeRecord } from './records.js';
import { resolveInRoot } from './paths.js';

const READ_CHUNK = 64 * 1024;

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

function asError(e: unknown): AipError {
  return e instanceof AipError
    ? e
    : aipError('FILE_IO', { detail: e instanceof Error ? e.message : String(e) });
}

export async function handleFileChannel(incoming: IncomingChannel, root: string): Promise<void> {
  const p = incoming.params;
  const resolved = await resolveInRoot(root, p.path);
  if (!resolved.ok) return incoming.reject(resolved.error);
  if (p.op === 'download') return download(incoming, resolved.path, p.offset);
  if (p.op === 'upload') return upload(incoming, resolved.path, p);
  incoming.reject(aipError('CHANNEL_BAD_PARAMS', { detail: "file op must be 'upload' or 'download'" }));
}

async function download(incoming: IncomingChannel, file: string, offsetParam: unknown): Promise<void> {
  const offset = offsetParam === undefined ? 0 : offsetParam;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
    return incoming.reject(
      aipError('CHANNEL_BAD_PARAMS', { detail: 'offset must be a non-negative integer' }),
    );
  let fh: FileHandle;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return incoming.reject(aipError('FILE_NOT_FOUND', { path: String(incoming.params.path) }));
  }
  let ep: ChannelEndpoint | null = null;
  try {
    const st = await fh.stat();
    if (!st.isFile())
      return incoming.reject(aipError('FILE_NOT_FOUND', { path: String(incoming.params.path) }));
    if (offset > st.size) return incoming.reject(aipError('FILE_BAD_OFFSET', { offset, size: st.size }));
    const channel = (ep = incoming.accept());
    await channel.write(encodeRecord({ size: st.size, offset }));
    const h = createHash('sha256');
    await hashRange(fh, h, 0, offset);
    await hashRange(fh, h, offset, st.size, (b) => channel.write(b));
    await channel.write(encodeRecord({ sha256: h.digest('hex') }));
    await channel.end();
  } catch (e) {
    ep?.reset(asError(e));
  } finally {
    await fh.close();
  }
}

async function upload(incoming: IncomingChannel, file: string, p: Record<string, unknown>): Promise<void> {
  const size = p.size;
  const want = p.sha256;
  if (
    typeof size !== 'number' ||
    !Number.isSafeInteger(size) ||
    size < 0 ||
    typeof want !== 'string' ||
    !/^[0-9a-f]{64}$/i.test(want)
  )
    return incoming.reject(
      aipError('CHANNEL_BAD_PARAMS', { detail: 'upload needs size (bytes) and sha256 (hex)' }),
    );
  const part = `${file}.part`;
  for (const f of [file, part]) {
    const st = await lstat(f).catch(() => null);
    if (st && !st.isFile()) return incoming.reject(aipError('FILE_PATH_ESCAPE', { path: String(p.path) }));
  }
  let offset = 0;
  if (p.resume === true) offset = (await lstat(part).catch(() => null))?.size ?? 0;
  if (offset > size) offset = 0;
  let fh: FileHandle;
  try {
    // Missing folders under the root are created (resolveInRoot checked that their existing ancestor is inside).
    await mkdir(dirname(part), { recursive: true });
    fh = await open(part, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    await fh.truncate(offset);
  } catch (e) {
    return incoming.reject(asError(e));
  }
  const ep = incoming.accept();
  let closed = false;
  try {
    await ep.write(encodeRecord({ offset }));
    const reader = new ChannelReader(ep);
    let pos = offset;
    for (;;) {
      const c = await reader.readSome(READ_CHUNK * 4);
      if (c === null) break;
      if (pos + c.byteLength > size)
        throw aipError('FILE_SIZE_MISMATCH', { expected: size, got: pos + c.byteLength });
      await fh.write(c, 0, c.byteLength, pos);
      pos += c.byteLength;
    }
    let result: Record<string, unknown>;
    if (pos !== size) {
      const e = aipError('FILE_SIZE_MISMATCH', { expected: size, got: pos });
      result = { ok: false, code: e.code, message: e.message };
    } else {
      const h = createHash('sha256');
      await hashRange(fh, h, 0, size);
      const got = h.digest('hex');
      await fh.close();
      closed = true;
      if (got !== want.toLowerCase()) {
        await unlink(part).catch(() => undefined);
        const e = aipError('FILE_CHECKSUM_MISMATCH', { expected: want.toLowerCase(), got });
        result = { ok: false, code: e.code, message: e.message };
      } else {
        await rename(part, file);
        result = { ok: true, size, sha256: got };
      }
    }
    await ep.write(encodeRecord(result));
    await ep.end();
  } catch (e) {
    ep.reset(asError(e));
  } finally {
    if (!closed) await fh.close();
  }
}
