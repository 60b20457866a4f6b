/**
 * What an `aipd batch` run (see batch.ts) prints: durations and one-line texts, and the summary table with its totals.
 */
import type { PlanFileEntry } from '../agents/plan.js';
import type { BatchOptions } from './batch-args.js';

/** `850 ms`, `1.2 s` */
export const duration = (ms: number): string =>
  ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
export const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ');

export type RowStatus = 'completed' | 'failed' | 'skipped' | 'not run';
export interface Row {
  file: string;
  status: RowStatus;
  ms: number | null;
  detail: string;
}

/**
 * The summary on stdout: one row per plan in file order, then the totals (and the status file, when there is one).
 * Returns the counts the exit code depends on along with the text.
 */
export function batchSummary(
  o: Pick<BatchOptions, 'mode' | 'target'>,
  files: readonly PlanFileEntry[],
  rows: ReadonlyMap<string, Row>,
  elapsed: number,
  statusFile: string | null,
): { text: string; failed: number; notRun: number } {
  const total = files.length;
  const ordered = files.map((f) => rows.get(f.stem)).filter((r): r is Row => r !== undefined);
  const count = (s: RowStatus): number => ordered.filter((r) => r.status === s).length;
  const table: string[][] = [
    ['plan', 'result', 'time', 'detail'],
    ...ordered.map((r) => [r.file, r.status, r.ms === null ? '-' : duration(r.ms), r.detail]),
  ];
  const widths = [0, 1, 2].map((c) => Math.max(...table.map((row) => row[c]!.length)));
  let out = '';
  for (const row of table)
    out += `${row
      .map((cell, c) => (c < 3 ? cell.padEnd(widths[c]!) : cell))
      .join('  ')
      .trimEnd()}\n`;
  const completed = count('completed');
  const failed = count('failed');
  const skipped = count('skipped');
  const notRun = count('not run');
  out +=
    `batch ${o.mode} on ${o.target}: ${total} plan${total === 1 ? '' : 's'}, ${completed} completed, ${failed} failed, ` +
    `${skipped} skipped${notRun ? `, ${notRun} not run` : ''} in ${duration(elapsed)}\n`;
  if (statusFile) out += `status file: ${statusFile}\n`;
  return { text: out, failed, notRun };
}
