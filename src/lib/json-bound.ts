/**
 * Whether a value's JSON text is certainly no longer than a limit, without writing it: a walk that adds an upper
 * bound of each node's JSON length and stops as soon as the sum passes the limit. `false` means "not certain", not
 * "longer": the caller then measures with JSON.stringify. It exists for the event-size check on the hot path, where
 * almost every payload is a few hundred bytes against a limit of tens of kilobytes, and stringifying each one only
 * to measure it cost about as much as writing it.
 *
 * The bounds, in UTF-16 units (what `.length` counts): a string at most 6 per unit plus its quotes (`\uXXXX` is the
 * longest escape); a number at most 24 (`-1.2345678901234567e-308`); `true`, `false`, `null` at most 5; an array or
 * object its brackets, a comma per member and a colon and quoted key per object member. A value whose JSON is not
 * its plain shape (an object with `toJSON`, such as a Date, or with a prototype other than Object's or null, or a
 * typed array) makes the answer `false`.
 */
export function jsonLengthAtMost(value: unknown, limit: number): boolean {
  return walk(value, limit, UPPER) >= 0;
}

/**
 * About how long a value's JSON text is, without writing it: each string its length plus quotes (escapes not
 * counted), each number 8, `true`, `false` and `null` 5, and brackets, commas, colons and quoted keys as written.
 * It is what a bound on retained results counts (the plan agent's `resultMaxBytes`): cheap on the hot path, close
 * for the text and numbers results carry, and never fooled by size, since it walks everything. A value whose JSON
 * is not its plain shape (see above) is measured with JSON.stringify.
 */
export function jsonSizeEstimate(value: unknown): number {
  const n = walk(value, Infinity, ESTIMATE);
  return n >= 0 ? n : (JSON.stringify(value)?.length ?? 0);
}

/** What a walk counts for a string unit, a number and a literal. */
interface Weights {
  readonly perUnit: number;
  readonly number: number;
  readonly literal: number;
}
const UPPER: Weights = { perUnit: 6, number: 24, literal: 5 };
const ESTIMATE: Weights = { perUnit: 1, number: 8, literal: 5 };

/** The walk's total under these weights; -1 once it passes `limit`, or for a value that is not plain JSON. */
function walk(value: unknown, limit: number, w: Weights): number {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    switch (typeof v) {
      case 'string':
        total += 2 + w.perUnit * v.length;
        break;
      case 'number':
        total += w.number;
        break;
      case 'boolean':
      case 'undefined':
        total += w.literal;
        break;
      case 'object':
        if (v === null) {
          total += 4;
          break;
        }
        if (Array.isArray(v)) {
          total += 2 + v.length;
          for (let i = 0; i < v.length; i++) stack.push(v[i]);
          break;
        }
        {
          const proto = Object.getPrototypeOf(v) as unknown;
          if ((proto !== Object.prototype && proto !== null) || 'toJSON' in v) return -1;
        }
        total += 2;
        for (const k in v) {
          if (!Object.hasOwn(v, k)) continue;
          total += 4 + w.perUnit * k.length;
          stack.push((v as Record<string, unknown>)[k]);
        }
        break;
      default:
        // bigint, symbol, function: JSON.stringify's own rules (a throw, or leaving them out) decide
        return -1;
    }
    if (total > limit) return -1;
  }
  return total;
}
