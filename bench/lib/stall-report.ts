/**
 * The numbers of `bench/stall.ts` (scenario `stall-deep-frame`): quantiles, the measures of one repetition (Run),
 * and the summary rows (medians over the repetitions) with the table printed on stdout.
 */

export const quantile = (sorted: readonly number[], q: number): number =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN;
export const median = (xs: readonly number[]): number =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
export const r2 = (v: number): number => Math.round(v * 100) / 100;

export interface Run {
  baseline_n: number;
  baseline_p50_ms: number;
  baseline_p99_ms: number;
  baseline_max_ms: number;
  attack_n: number;
  attack_max_ms: number;
  stall_ms: number;
  /** The same measure over a window of the same length right after, with no attack: the noise floor. */
  quiet_stall_ms: number;
  /** When the slowest round trip of the attack window was sent, in ms after the order to send the frame. */
  worst_sent_after_ms: number | null;
  written_ms: number;
  answered_ms: number;
  answer: string;
  server_rss_mb: number;
}

/** One frame size and opcode of the run; `key` names it in the results. */
export interface StallCase {
  mib: number;
  binary: boolean;
  key: string;
}

/** Per case, the medians over its repetitions (and the largest stall): the rows of the table and of the report. */
export function stallRows(cases: readonly StallCase[], results: Record<string, Run[]>) {
  return cases.map(({ mib, binary, key }) => {
    const runs = results[key]!;
    const stall = median(runs.map((r) => r.stall_ms));
    return {
      size_mib: mib,
      frame: binary ? 'binary' : 'text',
      reps: runs.length,
      baseline_p50_ms: r2(median(runs.map((r) => r.baseline_p50_ms))),
      baseline_p99_ms: r2(median(runs.map((r) => r.baseline_p99_ms))),
      baseline_max_ms: r2(median(runs.map((r) => r.baseline_max_ms))),
      attack_max_ms: r2(median(runs.map((r) => r.attack_max_ms))),
      stall_ms: r2(stall),
      stall_ms_max: r2(Math.max(...runs.map((r) => r.stall_ms))),
      stall_ms_per_mib: r2(stall / mib),
      quiet_stall_ms: r2(median(runs.map((r) => r.quiet_stall_ms))),
      answered_ms: r2(median(runs.map((r) => r.answered_ms))),
      worst_sent_after_ms: r2(median(runs.map((r) => r.worst_sent_after_ms ?? NaN))),
      written_ms: r2(median(runs.map((r) => r.written_ms))),
      answer: runs[0]?.answer ?? '',
      server_rss_mb_after: runs[runs.length - 1]?.server_rss_mb ?? null,
    };
  });
}

export type StallRow = ReturnType<typeof stallRows>[number];

/** The table on stdout: what was measured, one line per case, and aipd's answer to the frame. */
export function stallTable(rows: readonly StallRow[], reps: number): string[] {
  const cols: [string, (r: StallRow) => unknown][] = [
    ['frame MiB', (r) => r.size_mib],
    ['opcode', (r) => r.frame],
    ['reps', (r) => r.reps],
    ['baseline p50 ms', (r) => r.baseline_p50_ms],
    ['baseline p99 ms', (r) => r.baseline_p99_ms],
    ['baseline max ms', (r) => r.baseline_max_ms],
    ['max during attack ms', (r) => r.attack_max_ms],
    ['stall ms (median)', (r) => r.stall_ms],
    ['stall ms (max)', (r) => r.stall_ms_max],
    ['stall ms/MiB', (r) => r.stall_ms_per_mib],
    ['no-attack window ms', (r) => r.quiet_stall_ms],
    ['frame written at ms', (r) => r.written_ms],
    ['slowest RT sent at ms', (r) => r.worst_sent_after_ms],
    ['TOO_DEEP answer at ms', (r) => r.answered_ms],
    ['server RSS MB after', (r) => r.server_rss_mb_after],
  ];
  return [
    `stall-deep-frame: a healthy client's heartbeat round trips while another connection sends one [[[…]]] frame`,
    `(medians of ${reps} reps; stall = max during attack − baseline p99; no-attack window = the same measure over an`,
    `equally long window right after, nothing sent: the noise floor; "at ms" = after the attacker was told to send)`,
    '',
    `| ${cols.map(([h]) => h).join(' | ')} |`,
    `|${cols.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${cols.map(([, f]) => String(f(r))).join(' | ')} |`),
    '',
    `aipd's answer: ${rows[0]?.answer ?? ''}`,
  ];
}
