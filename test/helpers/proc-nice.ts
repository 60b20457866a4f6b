/** Linux: the nice value of a process's threads, read from /proc (field 19 of `stat`). */
import { readdirSync, readFileSync } from 'node:fs';

function niceOf(statPath: string): number {
  const stat = readFileSync(statPath, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

/** The nice value of the process `pid` (its main thread), or 'self'. */
export function processNice(pid: number | 'self'): number {
  return niceOf(`/proc/${pid}/stat`);
}

/** The nice value of each thread of the process `pid`, or 'self'. */
export function threadNices(pid: number | 'self'): number[] {
  return readdirSync(`/proc/${pid}/task`).map((t) => niceOf(`/proc/${pid}/task/${t}/stat`));
}
