/**
 * Device side of `file` channels, confined to a root folder (paths.ts).
 *
 * download  params {op:'download', path, offset?, length?}: device → `{size, offset, length}` record (length = the
 *           bytes that follow), bytes [offset, offset+length) (length defaults to the rest of the file and is
 *           clamped to it), then `{sha256}`: of the whole file when `length` was not given, of the bytes sent when
 *           it was; FIN.
 * upload    file-upload.ts: sized (`size`, `sha256` up front, resumable) or streamed (both in the FIN trailer).
 * list      file-list.ts: one `{files, truncated}` record.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { aipError } from '../../../protocol/index.js';
import type { ChannelEndpoint } from '../../channel/endpoint.js';
import type { IncomingChannel } from '../../channel/mux.js';
import { asError, fileKind, hashRange } from './file-io.js';
import { listDirectory } from './file-list.js';
import { upload } from './file-upload.js';
import { encodeRecord } from './records.js';
import { resolveInRoot } from './paths.js';

export { hashRange } from './file-io.js';

export async function handleFileChannel(incoming: IncomingChannel, root: string): Promise<void> {
  const p = incoming.params;
  const resolved = await resolveInRoot(root, p.path);
  if (!resolved.ok) return incoming.reject(resolved.error);
  if (p.op === 'download') return download(incoming, resolved.path, p.offset, p.length);
  if (p.op === 'upload') return upload(incoming, resolved.path, p, resolved.root);
  if (p.op === 'list') return listDirectory(incoming, resolved.path);
  incoming.reject(
    aipError('CHANNEL_BAD_PARAMS', { detail: "file op must be 'upload', 'download' or 'list'" }),
  );
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

async function download(
  incoming: IncomingChannel,
  file: string,
  offsetParam: unknown,
  lengthParam: unknown,
): Promise<void> {
  const offset = offsetParam ?? 0;
  if (!isCount(offset))
    return incoming.reject(
      aipError('CHANNEL_BAD_PARAMS', { detail: 'offset must be a non-negative integer' }),
    );
  if (lengthParam !== undefined && lengthParam !== null && !isCount(lengthParam))
    return incoming.reject(
      aipError('CHANNEL_BAD_PARAMS', { detail: 'length must be a non-negative integer' }),
    );
  const ranged = isCount(lengthParam);
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
      return incoming.reject(
        aipError('FILE_NOT_A_FILE', { path: String(incoming.params.path), kind: fileKind(st) }),
      );
    if (offset > st.size) return incoming.reject(aipError('FILE_BAD_OFFSET', { offset, size: st.size }));
    const end = ranged ? Math.min(st.size, offset + lengthParam) : st.size;
    const channel = (ep = incoming.accept());
    await channel.write(encodeRecord({ size: st.size, offset, length: end - offset }));
    const h = createHash('sha256');
    if (!ranged) await hashRange(fh, h, 0, offset); // the whole file's hash
    await hashRange(fh, h, offset, end, (b) => channel.write(b));
    await channel.write(encodeRecord({ sha256: h.digest('hex') }));
    await channel.end();
  } catch (e) {
    ep?.reset(asError(e));
  } finally {
    await fh.close();
  }
}
