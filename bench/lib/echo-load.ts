/**
 * Echo load for the reference servers: `conns` connections, each with `window` messages in flight;
 * every echo that comes back is answered with the next message. The payload is a JSON text shaped like a
 * `command_results` frame, padded to `payloadBytes`, so it matches what the AIP scenarios send.
 */
import { performance } from 'node:perf_hooks';
import { LatencyHistogram } from '../../src/cli/loadtest-hist.js';
import { makeSnapshot, wireBytes, type AipSnapshot, type ProgressFn } from '../../src/cli/loadtest-core.js';
import { Pacer } from '../../src/cli/loadtest-pacer.js';
import { buildFrame, RawWs } from '../../src/cli/loadtest-ws.js';

export interface EchoLoadOptions {
  host: string;
  port: number;
  conns: number;
  window: number;
  payloadBytes: number;
  /** Rate-limited mode (window 1): at most this many sends per second in total, FIFO over the connections. */
  rate?: number;
}

/** The `command_results` frame a bench device sends (UUID-sized ids), used to size every scenario's payload. */
export function sampleResultsFrame(): Record<string, unknown> {
  return {
    type: 'command_results',
    status: 'continue',
    session_id: '8e1f0a3c-6a7b-4c2d-9e0f-1a2b3c4d5e6f',
    client_id: 'bench-json-0',
    prev_response_id: '5d0e7c5e-1234-4abc-8def-0123456789ab',
    action_results: [{ status: 'success', result: 'ok', call_id: 'c7a0b1c2-d3e4-4f50-8a9b-cdef01234567' }],
  };
}

/** A command_results-like JSON text of exactly `bytes` bytes (or the unpadded size, if larger). */
export function echoPayload(bytes: number): string {
  const text = JSON.stringify(sampleResultsFrame());
  const size = Buffer.byteLength(text);
  if (bytes <= size) return text;
  // pad inside the result string so the frame stays valid JSON of the same shape
  return text.replace('"result":"ok"', `"result":"ok${' '.repeat(bytes - size)}"`);
}

interface Conn {
  ws: RawWs;
  sent: number[]; // send times of in-flight messages, FIFO
}

export class EchoLoad {
  readonly hist = new LatencyHistogram();
  private readonly conns: Conn[] = [];
  private readonly frame: Buffer;
  private running = false;
  private stopping = false;
  private rt = 0;
  private errors = 0;
  private firstError: string | null = null;
  private since = performance.now();
  private readonly pacer: Pacer<Conn> | null;
  private readonly payloadLen: number;

  constructor(private readonly opts: EchoLoadOptions) {
    const text = echoPayload(opts.payloadBytes);
    this.payloadLen = Buffer.byteLength(text);
    this.frame = buildFrame(text, false);
    this.pacer = opts.rate ? new Pacer<Conn>(opts.rate, (c) => this.sendOne(c)) : null;
  }

  async connectAll(onProgress?: ProgressFn): Promise<void> {
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      while (next < this.opts.conns) {
        next++;
        try {
          const ws = await RawWs.connect({ host: this.opts.host, port: this.opts.port, path: '/' });
          const c: Conn = { ws, sent: [] };
          ws.onMessage = () => this.onEcho(c);
          ws.onClose = (code) => {
            if (!this.stopping) this.error(`connection closed unexpectedly (code ${code})`);
          };
          this.conns.push(c);
        } catch (err) {
          this.error(err instanceof Error ? err.message : String(err));
        }
        onProgress?.(++done, this.opts.conns);
      }
    };
    await Promise.all(Array.from({ length: Math.min(200, this.opts.conns) }, worker));
  }

  start(): void {
    this.running = true;
    if (this.pacer) {
      this.pacer.start();
      for (const c of this.conns) this.pacer.push(c);
      return;
    }
    for (const c of this.conns) {
      const now = performance.now();
      for (let i = 0; i < this.opts.window; i++) c.sent.push(now);
      c.ws.sendFrames(Array.from({ length: this.opts.window }, () => this.frame));
    }
  }

  resetStats(): void {
    this.rt = 0;
    this.errors = 0;
    this.hist.reset();
    this.since = performance.now();
  }

  snapshot(): AipSnapshot {
    return makeSnapshot(this.since, this.hist, this.conns, {
      round_trips: this.rt,
      errors: this.errors,
      first_error: this.firstError,
      devices_connected: this.conns.filter((c) => !c.ws.closed).length,
      frame_out_bytes: wireBytes(this.payloadLen, true),
      frame_in_bytes: wireBytes(this.payloadLen, false),
    });
  }

  stop(): void {
    this.running = false;
    this.stopping = true;
    this.pacer?.stop();
    for (const c of this.conns) c.ws.close(1000);
  }

  private onEcho(c: Conn): void {
    const t0 = c.sent.shift();
    const now = performance.now();
    if (t0 !== undefined) this.hist.record((now - t0) * 1000);
    this.rt++;
    if (!this.running) return;
    if (this.pacer) this.pacer.push(c);
    else this.sendOne(c, now);
  }

  private sendOne(c: Conn, now = performance.now()): void {
    if (!this.running || c.ws.closed) return;
    c.sent.push(now);
    c.ws.sendFrames([this.frame]);
  }

  private error(text: string): void {
    this.errors++;
    this.firstError ??= text;
  }
}
