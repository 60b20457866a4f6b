/**
 * Structural guards run on every decoded value before schema validation:
 * a maximum nesting depth, and no `__proto__` / `constructor` keys anywhere (no prototype pollution).
 * The walk is iterative and visits nodes, not bytes, so large strings (screenshots) cost nothing extra.
 */
import { aipError, aipErrorAt, type AipError } from '../errors.js';

const FORBIDDEN = new Set(['__proto__', 'constructor']);

export function checkTree(root: unknown, maxDepth: number): AipError | null {
  if (root === null || typeof root !== 'object') return null;
  const nodes: object[] = [root];
  const depths: number[] = [1];
  while (nodes.length > 0) {
    const node = nodes.pop()!;
    const depth = depths.pop()!;
    if (depth > maxDepth) return aipError('TOO_DEEP', { max: maxDepth });
    if (Array.isArray(node)) {
      for (const item of node as unknown[]) {
        if (item !== null && typeof item === 'object') {
          nodes.push(item);
          depths.push(depth + 1);
        }
      }
      continue;
    }
    if (ArrayBuffer.isView(node))
      return aipError('UNSUPPORTED_VALUE', { what: 'a binary value', path: `depth ${depth}` });
    const proto = Object.getPrototypeOf(node) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      // A msgpack extension msgpackr decodes to a class (a timestamp is a Date): not a JSON value.
      const tag = Object.prototype.toString.call(node).slice(8, -1);
      const what = tag === 'Date' ? 'a timestamp (send times as ISO 8601 strings)' : `a ${tag} value`;
      return aipError('UNSUPPORTED_VALUE', { what, path: `depth ${depth}` });
    }
    for (const key in node) {
      if (FORBIDDEN.has(key)) return aipErrorAt('FORBIDDEN_KEY', [key], { key, path: `depth ${depth}` });
      const child = (node as Record<string, unknown>)[key];
      if (child !== null && typeof child === 'object') {
        nodes.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return null;
}

/** A short name for the JSON type of `v`, for error texts. */
export function jsonTypeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return 'binary';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}
