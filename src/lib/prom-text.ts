/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for the dashboard's overview, the bench and the tests: every line is a `# HELP`, a
 * `# TYPE` or a sample `name{label="value",…} number`; anything else throws. (The npm parser that was tried,
 * parse-prometheus-text-format 1.1.1, drops the labels, sums and counts of labelled histograms.)
 */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  readonly types: ReadonlyMap<string, string>;
  readonly samples: readonly Sample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/y;

/** A sample value; Prometheus reads NaN and ±Inf case-insensitively (Go's ParseFloat), and prom-client writes `Nan`. */
function number(raw: string): number {
  const lower = raw.toLowerCase();
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  if (lower === 'nan') return NaN;
  const n = Number(raw);
  if (Number.isNaN(n)) throw new Error(`not a number: ${raw}`);
  return n;
}

function labels(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < raw.length) {
    const at = LABEL.lastIndex;
    const m = LABEL.exec(raw);
    if (!m || m.index !== at) throw new Error(`bad labels: {${raw}}`);
    out[m[1]!] = m[2]!.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
  }
  return out;
}

export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('# HELP ')) continue;
    const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (t) {
      if (types.has(t[1]!)) throw new Error(`TYPE given twice for ${t[1]}`);
      types.set(t[1]!, t[2]!);
      continue;
    }
    if (line.startsWith('#')) throw new Error(`unknown comment line: ${line}`);
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    samples.push({ name: m[1]!, labels: labels(m[2]), value: number(m[3]!) });
  }
  return { types, samples };
}

/** Whether a sample is of `name` and its labels include `want`. */
const matches = (s: Sample, name: string, want: Record<string, string>): boolean =>
  s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v);

/** The value of the one sample of `name` whose labels include `want`, or 0 when none has them; throws if several do. */
export function valueOf(e: Exposition, name: string, want: Record<string, string> = {}): number {
  const found = e.samples.filter((s) => matches(s, name, want));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(want)}`);
  return found[0]?.value ?? 0;
}

/** The sum over every sample of `name` whose labels include `want`. */
export function sumOf(e: Exposition, name: string, want: Record<string, string> = {}): number {
  return e.samples.filter((s) => matches(s, name, want)).reduce((a, s) => a + s.value, 0);
}

/** A histogram's cumulative bucket counts by upper bound (`le`, ascending, +Inf last when present). */
export interface Buckets {
  readonly le: readonly number[];
  readonly counts: readonly number[];
}

/** The buckets of histogram `name` in `e` (`<name>_bucket`); the labels in `want` pick one series of a labelled one. */
export function bucketsOf(e: Exposition, name: string, want: Record<string, string> = {}): Buckets {
  const pairs = e.samples
    .filter((s) => s.labels.le !== undefined && matches(s, `${name}_bucket`, want))
    .map((s) => [number(s.labels.le!), s.value] as const)
    .sort((a, b) => a[0] - b[0]);
  return { le: pairs.map((p) => p[0]), counts: pairs.map((p) => p[1]) };
}

/**
 * The `q`-quantile of the observations made between two readings of a histogram (`prev` null: since the start), as
 * the upper bound of the bucket it falls in: an honest "at most", at the buckets' resolution. Null when nothing was
 * observed between them, or when the quantile falls past the last finite bound.
 */
export function quantileBetween(prev: Buckets | null, cur: Buckets, q: number): number | null {
  const before = new Map(prev?.le.map((le, i) => [le, prev.counts[i]!]) ?? []);
  const inc = cur.counts.map((c, i) => c - (before.get(cur.le[i]!) ?? 0));
  const total = inc[inc.length - 1] ?? 0;
  if (total <= 0) return null;
  const i = inc.findIndex((n) => n >= total * q);
  const le = cur.le[i];
  return le !== undefined && Number.isFinite(le) ? le : null;
}
