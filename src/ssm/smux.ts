/**
 * smux protocol version 1 frames, as the AWS plugin's multiplexed port forwarding speaks them over the data
 * channel's byte stream (docs/ssm.md):
 *
 *   offset 0  u8   version = 1
 *   offset 1  u8   cmd: 0 SYN (open a stream), 1 FIN (close it), 2 PSH (data), 3 NOP (keepalive)
 *   offset 2  u16  length of the data, little-endian
 *   offset 4  u32  stream id, little-endian
 *   offset 8  ...  data
 *
 * The byte stream is cut into data-channel messages with no regard to frame boundaries; `SmuxDecoder`
 * reassembles frames from chunks, holding at most one incomplete frame (≤ 8 + 65535 bytes).
 */

export const SMUX_VERSION = 1;
export const SMUX_HEADER_BYTES = 8;
export const SMUX_MAX_DATA = 0xffff;

export const SmuxCmd = { SYN: 0, FIN: 1, PSH: 2, NOP: 3 } as const;
export type SmuxCmd = (typeof SmuxCmd)[keyof typeof SmuxCmd];

export interface SmuxFrame {
  readonly cmd: SmuxCmd;
  readonly streamId: number;
  readonly data: Uint8Array;
}

export function encodeSmux(cmd: SmuxCmd, streamId: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (data.byteLength > SMUX_MAX_DATA) throw new RangeError(`smux data over ${SMUX_MAX_DATA} bytes`);
  const out = new Uint8Array(SMUX_HEADER_BYTES + data.byteLength);
  const v = new DataView(out.buffer);
  out[0] = SMUX_VERSION;
  out[1] = cmd;
  v.setUint16(2, data.byteLength, true);
  v.setUint32(4, streamId >>> 0, true);
  out.set(data, SMUX_HEADER_BYTES);
  return out;
}

/** PSH frames carrying `data`, each at most `maxData` bytes. */
export function encodeSmuxData(streamId: number, data: Uint8Array, maxData: number): Uint8Array[] {
  const size = Math.max(1, Math.min(maxData, SMUX_MAX_DATA));
  const out: Uint8Array[] = [];
  for (let off = 0; off < data.byteLength; off += size)
    out.push(encodeSmux(SmuxCmd.PSH, streamId, data.subarray(off, off + size)));
  return out;
}

/**
 * Reassembles smux frames from arbitrary chunks of the stream. Chunks of an incomplete frame are kept (copied) as a
 * list and joined once the frame is complete, so a frame that comes in many small pieces is not copied again and
 * again.
 */
export class SmuxDecoder {
  private chunks: Uint8Array[] = [];
  private bytes = 0;

  /** Frames completed by `chunk`, or a reason when the stream is not smux v1 (the stream is then unusable). */
  push(chunk: Uint8Array): SmuxFrame[] | { error: string } {
    if (chunk.byteLength > 0) {
      this.chunks.push(chunk);
      this.bytes += chunk.byteLength;
    }
    const frames: SmuxFrame[] = [];
    while (this.bytes >= SMUX_HEADER_BYTES) {
      const head = this.peek(SMUX_HEADER_BYTES);
      const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
      const version = head[0]!;
      const cmd = head[1]!;
      if (version !== SMUX_VERSION) return { error: `smux version ${version}, only 1 is spoken` };
      if (cmd > SmuxCmd.NOP) return { error: `unknown smux command ${cmd}` };
      const length = v.getUint16(2, true);
      if (this.bytes < SMUX_HEADER_BYTES + length) break;
      const frame = this.peek(SMUX_HEADER_BYTES + length);
      frames.push({
        cmd: cmd as SmuxCmd,
        streamId: v.getUint32(4, true),
        data: new Uint8Array(frame.subarray(SMUX_HEADER_BYTES)), // a copy (Buffer's slice would not be)
      });
      this.drop(SMUX_HEADER_BYTES + length);
    }
    // What is kept of `chunk` is copied: the caller's buffer may be reused (uWS detaches it after the handler).
    const last = this.chunks.length - 1;
    if (last >= 0 && this.chunks[last]!.buffer === chunk.buffer)
      this.chunks[last] = new Uint8Array(this.chunks[last]!);
    return frames;
  }

  /** Bytes of an incomplete frame held. */
  get buffered(): number {
    return this.bytes;
  }

  /** The first `n` held bytes (n ≤ held), joining chunks when they straddle; the joined chunk replaces them. */
  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.byteLength >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let off = 0;
    let used = 0;
    while (off < n) {
      const c = this.chunks[used]!;
      const take = Math.min(c.byteLength, n - off);
      out.set(c.subarray(0, take), off);
      off += take;
      if (take < c.byteLength) {
        this.chunks[used] = c.subarray(take);
        break;
      }
      used++;
    }
    this.chunks.splice(0, used, out);
    return out;
  }

  /** Drops `n` bytes, all in the first chunk (peek joined them). */
  private drop(n: number): void {
    const first = this.chunks[0]!;
    if (first.byteLength === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.bytes -= n;
  }
}
