/**
 * What the soak counts and how it names what went wrong: Counter (counts by key), SoakCounters (the counters every
 * load shares), and error texts bucketed (ids and numbers blanked) or mapped back to their catalogue name.
 */
import { Errors } from '../../protocol/index.js';

export const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Counts by key. */
export class Counter {
  private readonly m = new Map<string, number>();
  add(key: string, n = 1): void {
    this.m.set(key, (this.m.get(key) ?? 0) + n);
  }
  get(key: string): number {
    return this.m.get(key) ?? 0;
  }
  total(): number {
    let t = 0;
    for (const v of this.m.values()) t += v;
    return t;
  }
  /** Largest first. */
  entries(): [string, number][] {
    return [...this.m.entries()].sort((a, b) => b[1] - a[1]);
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.entries());
  }
}

export interface SoakCounters {
  /** Unexpected problems, by kind (any entry here is worth a look). */
  errors: Counter;
  /** Heartbeat replies received by persistent clients. */
  heartbeats: { answered: number; clients: number };
  stopping: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// Error texts → catalogue names

const HOLE = '\u0000';
const holes = new Proxy({}, { get: () => HOLE });
/** One matcher per catalogue entry whose text has literal parts, the most specific (longest literal) first. */
const MATCHERS: [RegExp, string][] = Object.entries(
  Errors as Record<string, { text: (p: unknown) => string }>,
)
  .flatMap(([name, spec]): [RegExp, string, number][] => {
    let t: string;
    try {
      t = spec.text(holes);
    } catch {
      return [];
    }
    const parts = t.split(HOLE);
    const literal = parts.join('').length;
    if (literal === 0) return [];
    const re = new RegExp(
      `^${parts.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[\\s\\S]*?')}$`,
    );
    return [[re, name, literal]];
  })
  .sort((a, b) => b[2] - a[2])
  .map(([re, name]) => [re, name]);

/** The catalogue name of an error text (`VALIDATION` when only the free-text VALIDATION entry fits). */
export function errorName(text: string): string {
  for (const [re, name] of MATCHERS) if (re.test(text)) return name;
  return 'VALIDATION';
}

/** An error text with ids and numbers blanked, for bucketing. */
export function bucket(text: string): string {
  return text
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '<uuid>')
    .replace(/soak-[\w@.-]+/g, '<id>')
    .replace(/\d+/g, 'N')
    .slice(0, 120);
}
