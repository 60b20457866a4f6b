/** Text cut to a byte budget, for what quotes a client's text: a tool result fed to a model, a device's error. */

/** `s` cut to at most `maxBytes` bytes of UTF-8 (on a character boundary), saying how much was left out. */
export function truncateUtf8(s: string, maxBytes: number): string {
  const bytes = Buffer.byteLength(s);
  if (bytes <= maxBytes) return s;
  const note = (n: number): string => `… [truncated: ${n} of ${bytes} bytes left out]`;
  const budget = Math.max(0, maxBytes - Buffer.byteLength(note(bytes)));
  const buf = Buffer.from(s).subarray(0, budget);
  let kept = buf.toString('utf8');
  if (kept.endsWith('\uFFFD')) kept = kept.slice(0, -1);
  return kept + note(bytes - Buffer.byteLength(kept));
}

/** The longest close reason a WebSocket close frame carries: 125 payload bytes less the 2 of the code. */
export const MAX_CLOSE_REASON_BYTES = 123;

/** `s` cut to at most `maxBytes` bytes of UTF-8, on a character boundary (no note: for fixed-size fields). */
export function utf8Prefix(s: string, maxBytes: number): string {
  if (s.length * 3 <= maxBytes || Buffer.byteLength(s) <= maxBytes) return s;
  const kept = Buffer.from(s).subarray(0, maxBytes).toString('utf8');
  return kept.endsWith('\uFFFD') ? kept.slice(0, -1) : kept;
}
