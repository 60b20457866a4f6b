/** A cheap estimate of what a JSON-like value costs in memory, for byte budgets. */

/** An estimate of a JSON-like value's memory: UTF-16 strings at 2 bytes a unit, 16 bytes per other node. */
export function approxBytes(value: unknown): number {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') total += 16 + v.length * 2;
    else if (v instanceof Uint8Array) total += 16 + v.byteLength;
    else if (Array.isArray(v)) {
      total += 16;
      for (const item of v as unknown[]) stack.push(item);
    } else if (v !== null && typeof v === 'object') {
      total += 16;
      for (const [k, item] of Object.entries(v)) {
        total += 16 + k.length * 2;
        stack.push(item);
      }
    } else total += 8;
  }
  return total;
}
