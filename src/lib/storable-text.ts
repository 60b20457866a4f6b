/**
 * Text every store can keep as it was given. PostgreSQL's text and jsonb refuse U+0000, and no store keeps an
 * unpaired UTF-16 surrogate (it becomes U+FFFD on the way to UTF-8), so a value acknowledged with either would be
 * refused by one store (a 500) or read back changed by all. The HTTP API refuses such strings at its edge (422).
 */

/** U+0000, a high surrogate with no low one after it, or a low surrogate with no high one before it. */
// eslint-disable-next-line no-control-regex -- U+0000 is what this looks for
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export const UNSTORABLE_TEXT_MESSAGE = 'String should not contain U+0000 or an unpaired UTF-16 surrogate';

/** The same rule said of one field, for AIP's error texts. */
export const unstorableField = (field: string): string =>
  `${field} must not contain U+0000 or an unpaired UTF-16 surrogate`;

export function isStorableText(s: string): boolean {
  return !UNSTORABLE.test(s);
}

/**
 * The path to the first string (object keys included) in a JSON value that is not storable, or null when all are.
 * The value comes from JSON.parse of a body whose depth is already bounded (the router's shape check).
 */
export function unstorableJsonPath(v: unknown, path: (string | number)[] = []): (string | number)[] | null {
  if (typeof v === 'string') return isStorableText(v) ? null : path;
  if (typeof v !== 'object' || v === null) return null;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = unstorableJsonPath(v[i], [...path, i]);
      if (p) return p;
    }
    return null;
  }
  for (const [k, x] of Object.entries(v)) {
    if (!isStorableText(k)) return [...path, k];
    const p = unstorableJsonPath(x, [...path, k]);
    if (p) return p;
  }
  return null;
}

/** Whether JSON text may hold such a string: only a `\u` escape can make one (raw bytes are UTF-8). */
export function jsonMayHoldUnstorable(body: Uint8Array): boolean {
  return Buffer.from(body.buffer, body.byteOffset, body.byteLength).includes('\\u');
}
