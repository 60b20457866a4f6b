/**
 * Progress on stderr: one rewritten status line on a TTY, otherwise a line per phase change and at most
 * one line every 2 s. Results never go to stderr; stdout carries only the final table.
 */
const tty = process.stderr.isTTY === true;
let lastText = '';
let lastPhase = '';
let lastAt = 0;

export function progress(scenario: string, phase: string, detail = ''): void {
  const text = `[${scenario}] ${phase}${detail ? ' ' + detail : ''}`;
  if (text === lastText) return;
  lastText = text;
  if (tty) {
    process.stderr.write(`\r\x1b[K${text}`);
    return;
  }
  const now = Date.now();
  const key = `${scenario}/${phase}`;
  if (key !== lastPhase || now - lastAt >= 2000) {
    lastPhase = key;
    lastAt = now;
    process.stderr.write(text + '\n');
  }
}

/** Ends the status line and prints a permanent one. */
export function note(text: string): void {
  if (tty) process.stderr.write('\r\x1b[K');
  lastText = '';
  process.stderr.write(text + '\n');
}

export function bar(done: number, total: number, width = 20): string {
  const f = total > 0 ? Math.min(1, done / total) : 0;
  const n = Math.round(f * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}] ${Math.round(f * 100)}%`;
}
