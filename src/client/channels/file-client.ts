/**
 * Controller side of `file` channels: upload a local file to the device's file root, or download one, with a
 * SHA-256 check of the whole file. `resume: true` continues from what the other side already has (the device's
 * `.part` file for uploads, the local file's length for downloads), e.g. after a reconnect. `uploadStream` sends
 * bytes of unknown length with the size and hash in the FIN trailer; `listFiles` lists a folder.
 */
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { aipError } from '../../../protocol/index.js';
import { errorFromCode } from '../../channel/endpoint.js';
import type { ChannelMux } from '../../channel/mux.js';
import { hashRange } from './file-io.js';
import type { ListEntry } from './file-list.js';
import { ChannelReader } from './records.js';

export interface TransferResult {
  readonly size: number;
  readonly sha256: string;
  /** Byte offset the transfer started from (0 unless resumed). */
  readonly offset: number;
}

const CHUNK = 64 * 1024;

export async function uploadFile(
  mux: ChannelMux,
  sessionId: string,
  localPath: string,
  remotePath: string,
  opts: { resume?: boolean } = {},
): Promise<TransferResult> {
  const fh = await open(localPath, 'r');
  try {
    const size = (await fh.stat()).size;
    const h = createHash('sha256');
    await hashRange(fh, h, 0, size);
    const sha256 = h.digest('hex');
    const ep = await mux.open({
      session_id: sessionId,
      kind: 'file',
      params: { op: 'upload', path: remotePath, size, sha256, resume: opts.resume === true },
    });
    const reader = new ChannelReader(ep);
    const { offset } = await reader.readRecord();
    if (typeof offset !== 'number' || offset < 0 || offset > size)
      throw aipError('CHANNEL_PROTOCOL', { channel: ep.channel, detail: 'bad upload offset' });
    await hashRange(fh, createHash('sha256'), offset, size, (b) => ep.write(b));
    await ep.end();
    const result = await reader.readRecord();
    if (result.ok !== true) throw errorFromCode(Number(result.code), String(result.message));
    return { size, sha256, offset };
  } finally {
    await fh.close();
  }
}

export async function downloadFile(
  mux: ChannelMux,
  sessionId: string,
  remotePath: string,
  localPath: string,
  opts: { resume?: boolean } = {},
): Promise<TransferResult> {
  const have = opts.resume ? ((await stat(localPath).catch(() => null))?.size ?? 0) : 0;
  const ep = await mux.open({
    session_id: sessionId,
    kind: 'file',
    params: { op: 'download', path: remotePath, offset: have },
  });
  await ep.end(); // nothing to send
  const reader = new ChannelReader(ep);
  const head = await reader.readRecord();
  const size = Number(head.size);
  const offset = Number(head.offset);
  const fh = await open(localPath, have > 0 ? 'r+' : 'w');
  try {
    await fh.truncate(offset);
    const h = createHash('sha256');
    await hashRange(fh, h, 0, offset);
    let pos = offset;
    while (pos < size) {
      const c = await reader.readSome(Math.min(CHUNK * 4, size - pos));
      if (c === null) throw aipError('FILE_SIZE_MISMATCH', { expected: size, got: pos });
      h.update(c);
      await fh.write(c, 0, c.byteLength, pos);
      pos += c.byteLength;
    }
    const { sha256 } = await reader.readRecord();
    const got = h.digest('hex');
    if (sha256 !== got) throw aipError('FILE_CHECKSUM_MISMATCH', { expected: String(sha256), got });
    if (!(await reader.atEnd()))
      throw aipError('CHANNEL_PROTOCOL', { channel: ep.channel, detail: 'bytes after the download trailer' });
    return { size, sha256: got, offset };
  } finally {
    await fh.close();
  }
}

/** Lists a folder of the device's file root (`"."` is the root). */
export async function listFiles(
  mux: ChannelMux,
  sessionId: string,
  remotePath = '.',
): Promise<{ files: ListEntry[]; truncated: boolean }> {
  const ep = await mux.open({
    session_id: sessionId,
    kind: 'file',
    params: { op: 'list', path: remotePath },
  });
  await ep.end();
  const rec = await new ChannelReader(ep).readRecord();
  return { files: rec.files as ListEntry[], truncated: rec.truncated === true };
}

/**
 * Streams bytes of a size not known in advance to `remotePath`: the size and SHA-256 go in the FIN trailer and the
 * device checks them before it renames the file into place.
 */
export async function uploadStream(
  mux: ChannelMux,
  sessionId: string,
  source: AsyncIterable<Uint8Array>,
  remotePath: string,
): Promise<TransferResult> {
  const ep = await mux.open({
    session_id: sessionId,
    kind: 'file',
    params: { op: 'upload', path: remotePath },
  });
  const reader = new ChannelReader(ep);
  const { offset } = await reader.readRecord();
  if (offset !== 0) throw aipError('CHANNEL_PROTOCOL', { channel: ep.channel, detail: 'bad upload offset' });
  const h = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of source) {
      h.update(chunk);
      size += chunk.byteLength;
      await ep.write(chunk);
    }
  } catch (e) {
    ep.reset();
    throw e;
  }
  const sha256 = h.digest('hex');
  await ep.end({ size, sha256 });
  const result = await reader.readRecord();
  if (result.ok !== true) throw errorFromCode(Number(result.code), String(result.message));
  return { size, sha256, offset: 0 };
}
