/** A directory entry as stored in the `{p}dir` hash, and the change messages on `{p}dir:changes`. */
import type { ClientInfo } from '../client-directory.js';

export interface DirectoryEntry {
  readonly clientId: string;
  readonly fence: number;
  readonly nodeId: string;
  readonly incarnation: string;
  readonly info: ClientInfo;
  /** The stored JSON, byte for byte (the janitor's evict compares it). */
  readonly raw: string;
}

interface StoredEntry {
  f: string;
  n: string;
  i: string;
  c: string;
}

/** Parses a stored entry; null when it is not one (never thrown: one bad entry must not stop a resync). */
export function parseEntry(clientId: string, raw: string): DirectoryEntry | null {
  try {
    const e = JSON.parse(raw) as Partial<StoredEntry>;
    if (
      typeof e.f !== 'string' ||
      typeof e.n !== 'string' ||
      typeof e.i !== 'string' ||
      typeof e.c !== 'string'
    )
      return null;
    const info = JSON.parse(e.c) as ClientInfo;
    if (info === null || typeof info !== 'object' || info.clientId !== clientId) return null;
    const fence = Number(e.f);
    if (!Number.isSafeInteger(fence)) return null;
    return { clientId, fence, nodeId: e.n, incarnation: e.i, info, raw };
  } catch {
    return null;
  }
}

export type DirectoryChange =
  | { readonly op: 'add'; readonly entry: DirectoryEntry }
  | { readonly op: 'del'; readonly clientId: string; readonly fence: number };

/** Parses a message of `{p}dir:changes`; null when it is not one. */
export function parseChange(message: string): DirectoryChange | null {
  try {
    const m = JSON.parse(message) as { op?: unknown; id?: unknown; e?: unknown; f?: unknown };
    if (typeof m.id !== 'string') return null;
    if (m.op === 'add' && typeof m.e === 'string') {
      const entry = parseEntry(m.id, m.e);
      return entry && { op: 'add', entry };
    }
    if (m.op === 'del' && typeof m.f === 'string' && Number.isSafeInteger(Number(m.f)))
      return { op: 'del', clientId: m.id, fence: Number(m.f) };
    return null;
  } catch {
    return null;
  }
}
