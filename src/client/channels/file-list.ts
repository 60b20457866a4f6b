/**
 * `list` on a `file` channel: params {op:'list', path} (`"."` is the root). The device answers with one record
 * `{files: [{filename, size, mode, mtime, is_dir}], truncated}` and FIN. Entries are sorted by name (code-unit
 * order), at most MAX_LIST_ENTRIES of them and at most MAX_LIST_RECORD_BYTES of JSON; `truncated` says whether
 * some were left out. `mode` is the permission bits in octal ("0644"), `mtime` ISO-8601. Entries are not
 * followed: a symlink is listed as itself (is_dir false), so nothing outside the root is described.
 *
 * A missing path is refused with FILE_NOT_FOUND, a file with FILE_NOT_A_DIRECTORY.
 */
import { lstat, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { aipError } from '../../../protocol/index.js';
import type { IncomingChannel } from '../../channel/mux.js';
import { asError } from './file-io.js';
import { encodeRecord, MAX_RECORD_BYTES } from './records.js';

export const MAX_LIST_ENTRIES = 10_000;
/** Leaves room for the record's envelope under the reader's limit. */
export const MAX_LIST_RECORD_BYTES = MAX_RECORD_BYTES - 1024;

export interface ListEntry {
  readonly filename: string;
  readonly size: number;
  readonly mode: string;
  readonly mtime: string;
  readonly is_dir: boolean;
}

export async function listDirectory(incoming: IncomingChannel, dir: string): Promise<void> {
  const shown = String(incoming.params.path);
  const st = await stat(dir).catch(() => null);
  if (!st) return incoming.reject(aipError('FILE_NOT_FOUND', { path: shown }));
  if (!st.isDirectory()) return incoming.reject(aipError('FILE_NOT_A_DIRECTORY', { path: shown }));
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    return incoming.reject(asError(e));
  }
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const files: ListEntry[] = [];
  let bytes = 32; // {"files":[],"truncated":false}
  let truncated = names.length > MAX_LIST_ENTRIES;
  for (const filename of names.slice(0, MAX_LIST_ENTRIES)) {
    const s = await lstat(path.join(dir, filename)).catch(() => null);
    if (!s) continue; // removed while listing
    const entry: ListEntry = {
      filename,
      size: s.size,
      mode: (s.mode & 0o7777).toString(8).padStart(4, '0'),
      mtime: s.mtime.toISOString(),
      is_dir: s.isDirectory(),
    };
    bytes += Buffer.byteLength(JSON.stringify(entry)) + 1;
    if (bytes > MAX_LIST_RECORD_BYTES) {
      truncated = true;
      break;
    }
    files.push(entry);
  }
  const ep = incoming.accept();
  try {
    await ep.write(encodeRecord({ files, truncated }));
    await ep.end();
  } catch (e) {
    ep.reset(asError(e));
  }
}
