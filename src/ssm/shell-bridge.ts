/**
 * A shell (`Standard_Stream`) or one command (`InteractiveCommands`) in a PTY on the device, over a stdio-framed
 * stream channel (protocol/stdio.ts).
 *
 * - The PTY opens with the plugin's first Size message (it sends one right after the handshake), or after
 *   `firstSizeWaitMs` with the session's rows/cols; later Size messages resize it (one that came while the PTY
 *   was opening is applied as soon as it is open).
 * - Input (PayloadType 1) becomes STDIN records; Flag and other payload types are ignored.
 * - Output: stdout and stderr both go as PayloadType 1 (the plugin prints every payload raw; with a PTY there is
 *   only stdout anyway).
 * - The end: the exit code is recorded on the session (`stream.exit`), the plugin gets `channel_closed`, and the
 *   session ends `completed`. The plugin itself always exits 0 (it never propagates exit codes).
 */
import {
  AipError,
  aipError,
  StdioDecoder,
  StdioTag,
  encodeResize,
  encodeStdioChunks,
} from '../../protocol/index.js';
import type { ChannelEndpoint } from '../channel/endpoint.js';
import { PayloadType, type ClientMessage } from './codec.js';
import { parseSize } from './handshake.js';
import { InputMeter, type Bridge, type BridgeHost } from './bridge.js';

export class ShellBridge implements Bridge {
  private ep: ChannelEndpoint | null = null;
  private opening = false;
  private size: { rows: number; cols: number } | null = null;
  private sizeTimer: NodeJS.Timeout | null = null;
  private readonly meter: InputMeter;
  private readonly decoder = new StdioDecoder();
  private closed = false;
  private waitStart: (() => void) | null = null;

  constructor(
    private readonly host: BridgeHost,
    private readonly firstSizeWaitMs: number,
  ) {
    this.meter = new InputMeter(host.inputMaxBytes, () => host.inputRoom());
  }

  get pendingInput(): number {
    return this.meter.bytes;
  }

  /** Resolves once the PTY is open (after the first Size, or the wait). */
  start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waitStart = () => {
        this.waitStart = null;
        if (this.sizeTimer) clearTimeout(this.sizeTimer);
        this.open().then(resolve, reject);
      };
      if (this.size) return this.waitStart();
      this.sizeTimer = setTimeout(() => this.waitStart?.(), this.firstSizeWaitMs);
    });
  }

  private async open(): Promise<void> {
    const { live, remote } = this.host;
    this.opening = true;
    const size = this.size ?? { rows: 24, cols: 80 };
    const plan = live.type.stream(live.params, size);
    if (!plan || plan.kind !== 'stream')
      throw aipError('REMOTE_UNSUPPORTED', { sid: live.id, type: live.type.name, op: 'shells' });
    const ep = await remote.openChannel(live, 'stream', plan.params);
    if (this.closed) return ep.reset(aipError('CHANNEL_CANCELLED'));
    this.ep = ep;
    // A Size that came while the PTY was opening.
    if (this.size && (this.size.rows !== size.rows || this.size.cols !== size.cols))
      this.meter.write(ep, encodeResize(this.size.rows, this.size.cols));
    ep.onReadable(() => this.pump());
    ep.onStateChange(() => {
      if (ep.state === 'reset' && !this.closed) this.host.fail(ep.error ?? aipError('CHANNEL_CANCELLED'));
    });
    remote.record(live, 'stream.opened', { kind: 'stream', via: 'ssm' });
  }

  canTake(m: ClientMessage): boolean {
    // A Size before the PTY opens is only kept; after, it is a resize record that counts like input.
    if (m.payloadType === PayloadType.SIZE) return this.ep === null || this.meter.open;
    if (m.payloadType !== PayloadType.OUTPUT) return true;
    return this.ep !== null && this.meter.open;
  }

  take(m: ClientMessage): void {
    if (m.payloadType === PayloadType.SIZE) {
      const size = parseSize(m.payload);
      if (!size) return this.host.log.warn('a Size message that is not {"cols","rows"} was ignored');
      this.size = size;
      if (this.ep) this.meter.write(this.ep, encodeResize(size.rows, size.cols));
      else if (!this.opening) this.waitStart?.();
      return;
    }
    if (m.payloadType !== PayloadType.OUTPUT || m.payload.byteLength === 0 || !this.ep) return;
    for (const rec of encodeStdioChunks(StdioTag.STDIN, m.payload))
      this.meter.write(this.ep, rec, () => this.host.remote.touch(this.host.live));
  }

  pump(): void {
    const ep = this.ep;
    if (!ep || this.closed) return;
    while (this.host.outputOpen()) {
      let c: Uint8Array | null | undefined;
      try {
        c = ep.take();
      } catch {
        return; // reset: the state listener fails the session
      }
      if (c === undefined) return;
      if (c === null) return this.exit(ep.trailer ?? {});
      const recs = this.decoder.push(c);
      if (recs instanceof AipError) return this.host.fail(recs);
      for (const r of recs)
        if ((r.tag === StdioTag.STDOUT || r.tag === StdioTag.STDERR) && r.payload.byteLength > 0)
          this.host.output(r.payload);
    }
  }

  private exit(trailer: Record<string, unknown>): void {
    const { live, remote } = this.host;
    const exit = {
      exit_code: typeof trailer.exit_code === 'number' ? trailer.exit_code : null,
      signal: typeof trailer.signal === 'string' ? trailer.signal : null,
    };
    this.closed = true;
    remote.record(live, 'stream.exit', { ...exit, via: 'ssm' });
    this.host.finish('', () => {
      void remote
        .end(live.id, 'completed', `stream ended with exit code ${String(exit.exit_code)}`)
        .catch((err: unknown) => this.host.log.warn({ err }, 'ending the session failed'));
    });
  }

  close(err: AipError): void {
    this.closed = true;
    this.waitStart = null;
    if (this.sizeTimer) clearTimeout(this.sizeTimer);
    if (this.ep && !this.ep.finished) this.ep.reset(err);
  }
}
