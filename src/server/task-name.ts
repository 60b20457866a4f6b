/** task_name rules (ufo-aip.md §9.3): sanitised on the WebSocket path, rejected on the HTTP path. */
import { randomUUID } from 'node:crypto';
import { aipError, MAX_ID_LENGTH, type AipError } from '../../protocol/index.js';

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

/** Why `name` is refused on the HTTP path (too long, or the wrong characters), or null when it is safe. */
export function taskNameError(name: string): AipError | null {
  if (name.length > MAX_ID_LENGTH)
    return aipError('HTTP_TASK_NAME_TOO_LONG', { length: name.length, max: MAX_ID_LENGTH });
  return isSafeTaskName(name) ? null : aipError('HTTP_INVALID_TASK_NAME');
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
