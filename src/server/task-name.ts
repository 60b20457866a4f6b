/** task_name rules (ufo-aip.md §9.3): sanitised on the WebSocket path, rejected on the HTTP path. */
import { randomUUID } from 'node:crypto';
import { MAX_ID_LENGTH } from '../../protocol/index.js';

const SAFE = /^[A-Za-z0-9._-]+$/;
/** Longest task_name or session_id aipd accepts (UFO sets no limit; §11 recommends one): the protocol's id cap. */
export { MAX_ID_LENGTH };

export function isSafeTaskName(name: unknown): name is string {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    name.length <= MAX_ID_LENGTH &&
    !name.startsWith('.') &&
    SAFE.test(name)
  );
}

/** Replaces every character outside [A-Za-z0-9._-] with `_` and strips leading dots; falls back to a uuid4. */
export function sanitizeTaskName(name: string | null | undefined, fallback?: string): string {
  if (name) {
    const s = name
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .replace(/^\.+/, '')
      .slice(0, MAX_ID_LENGTH);
    if (s) return s;
  }
  if (fallback) return sanitizeTaskName(fallback);
  return randomUUID();
}
