/** Process and polling helpers shared by the real-process tests. */

/** Whether `pid` is alive; any error other than "no such process" is a test failure (thrown). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    return false;
  }
}

/** Polls `pred` (sync or async) every 20 ms until it holds; fails after `ms` naming `what`. */
export async function until(
  pred: () => boolean | Promise<boolean>,
  what = 'a condition',
  ms = 20_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
