/**
 * JSON texts kept off the JavaScript heap until they are read back: each is appended, as UTF-8, to one buffer that
 * grows by doubling, and `values()` parses them all at once.
 *
 * What it is for: values that a long task keeps for its whole life and reads only at its end (the plan agent's
 * per-step record). Kept as objects, every one of them is young when it is made and is copied by the scavenge that
 * follows and again when it is promoted; each scavenge's pause grows with what it copies, and it stops the event
 * loop. Bytes in a buffer's backing store are not on the heap: no scavenge copies them.
 */
export class JsonArena {
  private buf: Buffer | null = null;
  private used = 0;
  private count = 0;

  /** The UTF-8 bytes held, separators included. */
  get bytes(): number {
    return this.used;
  }

  /** How many texts were appended. */
  get size(): number {
    return this.count;
  }

  /**
   * Appends one JSON text: `head + json + tail`, written piece by piece (no concatenated copy is made), as
   * JSON.stringify writes it (the caller vouches for that).
   */
  append(json: string, head = '', tail = ''): void {
    // A UTF-16 unit is at most 3 bytes of UTF-8; one more for the comma.
    const most = this.used + 1 + 3 * (head.length + json.length + tail.length);
    if (this.buf === null || most > this.buf.length) this.grow(most);
    const buf = this.buf!;
    if (this.count > 0) buf[this.used++] = 0x2c; // ,
    if (head.length > 0) this.used += buf.write(head, this.used, 'utf8');
    this.used += buf.write(json, this.used, 'utf8');
    if (tail.length > 0) this.used += buf.write(tail, this.used, 'utf8');
    this.count++;
  }

  /** Every text appended, parsed, in order. */
  values(): unknown[] {
    if (this.buf === null || this.count === 0) return [];
    return JSON.parse(`[${this.buf.toString('utf8', 0, this.used)}]`) as unknown[];
  }

  private grow(atLeast: number): void {
    const next = Buffer.allocUnsafeSlow(Math.max(atLeast, 2 * (this.buf?.length ?? 0), 1024));
    if (this.buf !== null) this.buf.copy(next, 0, 0, this.used);
    this.buf = next;
  }
}
