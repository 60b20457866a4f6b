/**
 * Small framing used inside `file` channels: JSON records prefixed by a u32 BE length, mixed with raw bytes.
 * `ChannelReader` reads exact byte counts and records from an endpoint, keeping any leftover for the next read.
 */
import { aipError } from '../../../protocol/index.js';
import type { ChannelEndpoint } from '../../channel/endpoint.js';

/** Largest record a reader accepts (a `list` answer of 10,000 entries fits). */
export const MAX_RECORD_BYTES = 4 * 1024 * 1024;

export function encodeRecord(obj: Record<string, unknown>): Uint8Array {
  const json = Buffer.from(JSON.stringify(obj), 'utf8');
  const out = Buffer.allocUnsafe(4 + json.byteLength);
  out.writeUInt32BE(json.byteLength, 0);
  json.copy(out, 4);
  return out;
}

export class ChannelReader {
  private pending: Uint8Array | null = null;

  constructor(private readonly ep: ChannelEndpoint) {}

  /** Up to `max` bytes (at least 1), or null at end of stream. */
  async readSome(max: number): Promise<Uint8Array | null> {
    let c = this.pending;
    this.pending = null;
    if (c === null) c = await this.ep.read();
    if (c === null) return null;
    if (c.byteLength > max) {
      this.pending = c.subarray(max);
      return c.subarray(0, max);
    }
    return c;
  }

  /** Exactly `n` bytes; throws if the stream ends first. */
  async readExact(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const c = await this.readSome(n - got);
      if (c === null)
        throw aipError('CHANNEL_PROTOCOL', {
          channel: this.ep.channel,
          detail: `stream ended after ${got} of ${n} bytes`,
        });
      out.set(c, got);
      got += c.byteLength;
    }
    return out;
  }

  /** One length-prefixed JSON object record. */
  async readRecord(): Promise<Record<string, unknown>> {
    const len = Buffer.from(await this.readExact(4)).readUInt32BE(0);
    if (len > MAX_RECORD_BYTES)
      throw aipError('CHANNEL_PROTOCOL', { channel: this.ep.channel, detail: `record of ${len} bytes` });
    const text = Buffer.from(await this.readExact(len)).toString('utf8');
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      throw aipError('CHANNEL_PROTOCOL', { channel: this.ep.channel, detail: 'record is not a JSON object' });
    return v as Record<string, unknown>;
  }

  /** True if the stream has ended with nothing left. */
  async atEnd(): Promise<boolean> {
    if (this.pending) return false;
    const c = await this.ep.read();
    if (c === null) return true;
    this.pending = c;
    return false;
  }
}
