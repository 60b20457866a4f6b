/**
 * Random (version 4) UUIDs for ids the hot path makes on every command: each batch's `response_id` and each
 * action's `call_id`.
 *
 * `crypto.randomUUID()` on Node 20 joins 20 short strings per id (each pair of hex digits and each dash is its own
 * `+`), so each id leaves about twenty intermediate strings behind: about 0.6 KB of garbage. Here the random bytes
 * come from the same CSPRNG (`randomFillSync`, a block of ids at a time, as `randomUUID` does), the text of a whole
 * block is written as ASCII into one buffer, and each id is one 36-character string cut from it.
 */
import { randomFillSync } from 'node:crypto';

/** Ids made per refill: one CSPRNG call and one formatting pass per block. */
const BLOCK = 128;
const UUID_CHARS = 36;

const HEX = Buffer.from('0123456789abcdef', 'latin1');
const random = Buffer.allocUnsafeSlow(16 * BLOCK);
const text = Buffer.allocUnsafeSlow(UUID_CHARS * BLOCK);
let next = BLOCK;

/** Writes the text of the block's ids (xxxxxxxx-xxxx-4xxx-Nxxx-xxxxxxxxxxxx, N one of 8, 9, a, b). */
function refill(): void {
  randomFillSync(random);
  for (let id = 0; id < BLOCK; id++) {
    const r = id * 16;
    random[r + 6] = (random[r + 6]! & 0x0f) | 0x40; // version 4
    random[r + 8] = (random[r + 8]! & 0x3f) | 0x80; // variant 10
    let t = id * UUID_CHARS;
    for (let b = 0; b < 16; b++) {
      if (b === 4 || b === 6 || b === 8 || b === 10) text[t++] = 0x2d; // '-'
      const byte = random[r + b]!;
      text[t++] = HEX[byte >> 4]!;
      text[t++] = HEX[byte & 0x0f]!;
    }
  }
  next = 0;
}

/** A random version 4 UUID, in lower case, as `crypto.randomUUID()` gives. */
export function uuid(): string {
  if (next === BLOCK) refill();
  const start = next++ * UUID_CHARS;
  return text.toString('latin1', start, start + UUID_CHARS);
}
