/**
 * Uploads into a device's file root, written to `<path>.part` and renamed into place once checked. The answer is
 * one record, `{ok: true, size, sha256}` or `{ok: false, code, message}`, then FIN.
 *
 * sized     params {op:'upload', path, size, sha256, resume?}: device → `{offset}` (bytes of `<path>.part` it
 *           already has when resuming, else 0); controller → bytes [offset, size), FIN; the device checks size
 *           and SHA-256 of the whole part file. A broken upload keeps its `.part` file for a later resume.
 * streamed  params {op:'upload', path} (no size, no sha256: not known in advance): device → `{offset: 0}`;
 *           controller → bytes, then FIN with the trailer `{size, sha256}`; the device hashes as it writes and
 *           checks both against the trailer. A failed streamed upload removes its `.part` file.
 *
 * A file already at `path` is replaced (as Backend.AI's upload does); a folder there is refused with FILE_NOT_A_FILE,
 * and a file where a folder of `path` has to be with FILE_NOT_A_DIRECTORY. Missing folders are created.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { aipError, type AipError } from '../../../protocol/index.js';
import type { ChannelEndpoint } from '../../channel/endpoint.js';
import type { IncomingChannel } from '../../channel/mux.js';
import { asError, fileKind, hashRange, READ_CHUNK } from './file-io.js';
import { ChannelReader, encodeRecord } from './records.js';

const SHA256_HEX = /^[0-9a-f]{64}$/i;

const failure = (e: AipError): Record<string, unknown> => ({ ok: false, code: e.code, message: e.message });

export async function upload(
  incoming: IncomingChannel,
  file: string,
  p: Record<string, unknown>,
  root: string,
): Promise<void> {
  const streamed = p.size === undefined && p.sha256 === undefined;
  const size = p.size;
  const want = p.sha256;
  if (
    !streamed &&
    (typeof size !== 'number' ||
      !Number.isSafeInteger(size) ||
      size < 0 ||
      typeof want !== 'string' ||
      !SHA256_HEX.test(want))
  )
    return incoming.reject(
      aipError('CHANNEL_BAD_PARAMS', {
        detail: 'upload needs size (bytes) and sha256 (hex), or neither for a streamed upload',
      }),
    );
  const part = `${file}.part`;
  for (const f of [file, part]) {
    const st = await lstat(f).catch(() => null);
    if (st?.isSymbolicLink()) return incoming.reject(aipError('FILE_PATH_ESCAPE', { path: String(p.path) }));
    if (st && !st.isFile())
      return incoming.reject(aipError('FILE_NOT_A_FILE', { path: String(p.path), kind: fileKind(st) }));
  }
  let offset = 0;
  if (!streamed && p.resume === true) offset = (await lstat(part).catch(() => null))?.size ?? 0;
  if (!streamed && offset > (size as number)) offset = 0;
  let fh: FileHandle;
  try {
    // Missing folders under the root are created (resolveInRoot checked that their existing ancestor is inside).
    await mkdir(dirname(part), { recursive: true });
    fh = await open(part, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    await fh.truncate(offset);
  } catch (e) {
    return incoming.reject((await fileInTheWay(root, dirname(part))) ?? asError(e));
  }
  const ep = incoming.accept();
  const closed = { value: false };
  try {
    await ep.write(encodeRecord({ offset }));
    const result = streamed
      ? await receiveStreamed(ep, fh, file, closed)
      : await receiveSized(ep, fh, file, offset, size as number, (want as string).toLowerCase(), closed);
    await ep.write(encodeRecord(result));
    await ep.end();
  } catch (e) {
    ep.reset(asError(e));
    if (streamed) await unlinkAfterClose(fh, part, closed);
  } finally {
    if (!closed.value) await fh.close();
  }
}

/**
 * FILE_NOT_A_DIRECTORY naming (relative to the root) the nearest existing ancestor of `dir` when it is not a folder,
 * i.e. a file stands where the upload needs a folder; null when that ancestor is a folder.
 */
async function fileInTheWay(root: string, dir: string): Promise<AipError | null> {
  for (let d = dir; ; d = dirname(d)) {
    const st = await stat(d).catch(() => null);
    if (st) return st.isDirectory() ? null : aipError('FILE_NOT_A_DIRECTORY', { path: relative(root, d) });
    if (d === dirname(d)) return null;
  }
}

async function unlinkAfterClose(fh: FileHandle, part: string, closed: { value: boolean }): Promise<void> {
  if (!closed.value) {
    closed.value = true;
    await fh.close().catch(() => undefined);
  }
  await unlink(part).catch(() => undefined);
}

async function receiveSized(
  ep: ChannelEndpoint,
  fh: FileHandle,
  file: string,
  offset: number,
  size: number,
  want: string,
  closed: { value: boolean },
): Promise<Record<string, unknown>> {
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
  if (pos !== size) return failure(aipError('FILE_SIZE_MISMATCH', { expected: size, got: pos }));
  const h = createHash('sha256');
  await hashRange(fh, h, 0, size);
  const got = h.digest('hex');
  closed.value = true;
  await fh.close();
  const part = `${file}.part`;
  if (got !== want) {
    await unlink(part).catch(() => undefined);
    return failure(aipError('FILE_CHECKSUM_MISMATCH', { expected: want, got }));
  }
  await rename(part, file);
  return { ok: true, size, sha256: got };
}

async function receiveStreamed(
  ep: ChannelEndpoint,
  fh: FileHandle,
  file: string,
  closed: { value: boolean },
): Promise<Record<string, unknown>> {
  const part = `${file}.part`;
  const reader = new ChannelReader(ep);
  const h = createHash('sha256');
  let pos = 0;
  for (;;) {
    const c = await reader.readSome(READ_CHUNK * 4);
    if (c === null) break;
    h.update(c);
    await fh.write(c, 0, c.byteLength, pos);
    pos += c.byteLength;
  }
  const got = h.digest('hex');
  const t = ep.trailer;
  let err: AipError | null = null;
  if (
    !t ||
    typeof t.size !== 'number' ||
    !Number.isSafeInteger(t.size) ||
    typeof t.sha256 !== 'string' ||
    !SHA256_HEX.test(t.sha256)
  )
    err = aipError('CHANNEL_BAD_PARAMS', {
      detail: 'a streamed upload ends with the FIN trailer {size, sha256}',
    });
  else if (t.size !== pos) err = aipError('FILE_SIZE_MISMATCH', { expected: t.size, got: pos });
  else if (t.sha256.toLowerCase() !== got)
    err = aipError('FILE_CHECKSUM_MISMATCH', { expected: t.sha256.toLowerCase(), got });
  if (err) {
    await unlinkAfterClose(fh, part, closed);
    return failure(err);
  }
  closed.value = true;
  await fh.close();
  await rename(part, file);
  return { ok: true, size: pos, sha256: got };
}
