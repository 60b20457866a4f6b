/**
 * Confines file-channel paths to a root folder: relative paths only, no `..` segments, and the real path of the
 * target (or of its deepest existing ancestor) must stay inside the real root, so a symlink cannot lead out.
 */
import { lstat, realpath } from 'node:fs/promises';
import path from 'node:path';
import { aipError, type AipError } from '../../../protocol/index.js';

export type Resolved = { ok: true; path: string; root: string } | { ok: false; error: AipError };

function inside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

export async function resolveInRoot(rootDir: string, rel: unknown): Promise<Resolved> {
  const shown = typeof rel === 'string' ? rel : String(rel);
  const escape = (): Resolved => ({ ok: false, error: aipError('FILE_PATH_ESCAPE', { path: shown }) });
  if (typeof rel !== 'string' || rel.length === 0 || rel.length > 4096 || rel.includes('\0')) return escape();
  if (path.isAbsolute(rel) || path.win32.isAbsolute(rel) || /^[a-zA-Z]:/.test(rel)) return escape();
  if (rel.split(/[\\/]+/).some((seg) => seg === '..')) return escape();
  const root = await realpath(rootDir);
  const target = path.resolve(root, rel);
  if (!inside(root, target)) return escape();
  // Walk up to the deepest existing ancestor and check where it really is.
  let probe = target;
  for (;;) {
    try {
      await lstat(probe);
      break;
    } catch {
      const parent = path.dirname(probe);
      if (parent === probe) return escape();
      probe = parent;
    }
  }
  const real = await realpath(probe).catch(() => null);
  if (real === null || !inside(root, real)) return escape();
  return { ok: true, path: target, root };
}
