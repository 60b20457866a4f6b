/**
 * A tiny in-process timing harness for micro benchmarks: calibrated batches, several repetitions,
 * median ns/op. Run alone on an idle box for meaningful figures.
 */
import { performance } from 'node:perf_hooks';

export interface MicroResult {
  name: string;
  ns_per_op: number;
  ops_per_s: number;
  reps: number;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** Times `fn` (sync or async) for about `repMs` per repetition; returns the median. */
export async function measure(
  name: string,
  fn: () => unknown,
  opts: { repMs?: number; reps?: number } = {},
): Promise<MicroResult> {
  const repMs = opts.repMs ?? 200;
  const reps = opts.reps ?? 5;
  const isAsync = fn() instanceof Promise;
  const runBatch = async (n: number): Promise<number> => {
    const t0 = performance.now();
    if (isAsync) for (let i = 0; i < n; i++) await fn();
    else for (let i = 0; i < n; i++) fn();
    return performance.now() - t0;
  };
  // calibrate: grow the batch until it takes at least 20 ms (also warms up the JIT)
  let n = 100;
  for (;;) {
    const ms = await runBatch(n);
    if (ms >= 20) {
      n = Math.max(1, Math.round((n * repMs) / ms));
      break;
    }
    n *= 4;
  }
  const samples: number[] = [];
  for (let r = 0; r < reps; r++) samples.push(((await runBatch(n)) * 1e6) / n);
  const ns = median(samples);
  return { name, ns_per_op: Math.round(ns), ops_per_s: Math.round(1e9 / ns), reps };
}

const sink: { value: unknown } = { value: undefined };

/**
 * Times synchronous cases side by side: each is calibrated to about `repMs` per batch, then `reps` rounds run
 * every case once in turn, so load that comes and goes on a shared box hits all cases alike; medians per case.
 */
export function measureInterleaved(
  cases: readonly (readonly [string, () => unknown])[],
  opts: { repMs?: number; reps?: number } = {},
): MicroResult[] {
  const repMs = opts.repMs ?? 100;
  const reps = opts.reps ?? 9;
  const runBatch = (fn: () => unknown, n: number): number => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink.value = fn(); // kept, so the work can not be optimised away
    return performance.now() - t0;
  };
  const sizes = cases.map(([, fn]) => {
    let n = 100;
    for (let ms = runBatch(fn, n); ms < 20; ms = runBatch(fn, n)) n *= 4;
    return Math.max(1, Math.round((n * repMs) / runBatch(fn, n)));
  });
  const samples = cases.map((): number[] => []);
  for (let r = 0; r < reps; r++)
    cases.forEach(([, fn], k) => samples[k]!.push((runBatch(fn, sizes[k]!) * 1e6) / sizes[k]!));
  return cases.map(([name], k) => {
    const ns = median(samples[k]!);
    return { name, ns_per_op: Math.round(ns), ops_per_s: Math.round(1e9 / ns), reps };
  });
}

export function printTable(title: string, rows: readonly MicroResult[]): void {
  console.log(`\n### ${title}\n\n| operation | ns/op | ops/s |\n|---|---:|---:|`);
  for (const r of rows)
    console.log(
      `| ${r.name} | ${r.ns_per_op.toLocaleString('en-US')} | ${r.ops_per_s.toLocaleString('en-US')} |`,
    );
}
