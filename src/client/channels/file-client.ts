/**
 * Controller side of `file` channels: upload a local file to the device's file root, or download one, with a
 * SHA-256 check of the whole file. `resume: true` continues from what the other side already has (the device's
 * `.part` file for uploads, the local file's length for downloads), e.g. after a reconnect.
 */
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { aipError } from '../../../protocol/index.js';
import { errorFromCode } from '../../channel/endpoint.js';
import type { ChannelMux } from '../../channel/mux.js';
import { hashRange } from './file.js';
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
