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
