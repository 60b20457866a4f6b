/**
 * The stream WebSocket of a typed session (`stream_url`, protocol `aipd.stream.v1`, docs/remote-execution.md):
 *
 *   awaiting_token ──{"token"} ok──▶ opening ──channel open──▶ open ──exit / close──▶ closed
 *         └────────── bad token / timeout / device refused / close ───────────────────▶ closed
 *
 * Client → server: first a text frame {"token", "rows"?, "cols"?}; then (held in order until the stream is open,
 * within the input budget) binary frames are stdin (Port: the TCP
 * bytes), and text frames are {"type":"resize","rows","cols"}, {"type":"eof"} or {"type":"signal","name"}.
 * Server → client: {"type":"ready",…}; binary frames [0x01]+stdout or [0x02]+stderr (Port: the TCP bytes as they
 * are); at the end {"type":"exit","exit_code","signal"} and close 1000. Errors: {"type":"error","code","message"}
 * and a 4010–4014 close.
 *
 * Flow control: output is taken from the channel only while this socket's outbound buffer is under its high-water
 * mark (the channel's credit then stops the device); input waiting for the device's credit is capped.
 */
import {
  aipError,
  AipError,
  CloseCode,
  STDIO_SIGNALS,
  StdioDecoder,
  StdioTag,
  encodeResize,
  encodeStdio,
  encodeStdioChunks,
} from '../../protocol/index.js';
import type { ChannelEndpoint } from '../channel/endpoint.js';
import { Fsm, type TransitionTable } from '../lib/fsm.js';
import type { Logger } from '../logger.js';
import type { Connection, SocketHandler } from '../transport/connection.js';
import type { LiveRemote, RemoteSessions } from './remote-sessions.js';
import { TokenGate } from './token-gate.js';

export const STREAM_SUBPROTOCOL = 'aipd.stream.v1';

type StreamState = 'awaiting_token' | 'opening' | 'open' | 'closed';
const TRANSITIONS: TransitionTable<StreamState> = {
  awaiting_token: ['opening', 'closed'],
  opening: ['open', 'closed'],
  open: ['closed'],
  closed: [],
};

export interface StreamSocketOptions {
  readonly tokenWaitMs: number;
  readonly inputMaxBytes: number;
  readonly highWaterMarkBytes: number;
  /** Told once, when the socket leaves `awaiting_token` (any way). */
  readonly tokenDecided?: () => void;
}

/** `/sessions/{id}/stream` → the session id, or null. */
export function streamSessionId(path: string): string | null {
  return sessionPathId(path, 'stream');
}

/** `/sessions/{id}/{leaf}` → the session id, or null (the stream and SSM WebSocket paths). */
export function sessionPathId(path: string, leaf: 'stream' | 'ssm'): string | null {
  const m = /^\/sessions\/([^/]+)\/([a-z]+)\/?$/.exec(path);
  if (!m || m[2] !== leaf) return null;
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    return null;
  }
}

const dec = new TextDecoder('utf-8', { fatal: true });

export class StreamSocket implements SocketHandler {
  private readonly fsm = new Fsm(TRANSITIONS, 'awaiting_token', 'stream socket');
  private readonly log: Logger;
  private readonly gate: TokenGate;
  private ep: ChannelEndpoint | null = null;
  private live: LiveRemote | null = null;
  private stdio = true;
  private readonly decoder = new StdioDecoder();
  private pendingIn = 0;
  private held: { bytes: Uint8Array; isBinary: boolean }[] = [];
  private heldBytes = 0;
  private release: (() => void) | null = null;
  private readonly closer = (): void =>
    this.fail(aipError('CHANNEL_SESSION_ENDED', { sid: this.sessionId }), CloseCode.NORMAL);

  constructor(
    private readonly conn: Connection,
    private readonly sessionId: string,
    private readonly remote: RemoteSessions,
    private readonly opts: StreamSocketOptions,
    log: Logger,
  ) {
    this.log = log.child({ conn: conn.id, session_id: sessionId });
    this.gate = new TokenGate(
      opts.tokenWaitMs,
      () =>
        this.fail(aipError('STREAM_TOKEN_MISSING', { ms: opts.tokenWaitMs }), CloseCode.STREAM_TOKEN_TIMEOUT),
      opts.tokenDecided,
    );
  }

  message(data: ArrayBuffer | Uint8Array | string, isBinary: boolean): void {
    const bytes =
      typeof data === 'string' ? Buffer.from(data) : data instanceof Uint8Array ? data : new Uint8Array(data);
    if (this.fsm.state === 'awaiting_token') return void this.start(bytes, isBinary);
    if (this.fsm.state === 'opening') return this.hold(bytes, isBinary);
    if (this.fsm.state !== 'open') return;
    if (isBinary) return this.input(bytes.slice());
    const msg = parseJson(bytes);
    if (!msg)
      return this.fail(
        aipError('STREAM_BAD_MESSAGE', { detail: 'text frames must be JSON objects' }),
        CloseCode.STREAM_BAD_MESSAGE,
      );
    this.control(msg);
  }

  /** Input sent before the device opened the stream waits (bounded by the input budget) and goes in order. */
  private hold(bytes: Uint8Array, isBinary: boolean): void {
    this.heldBytes += bytes.byteLength;
    if (this.heldBytes > this.opts.inputMaxBytes)
      return this.fail(
        aipError('STREAM_INPUT_OVER_BUDGET', { max: this.opts.inputMaxBytes }),
        CloseCode.STREAM_INPUT_OVER_BUDGET,
      );
    this.held.push({ bytes: bytes.slice(), isBinary });
  }

  closed(): void {
    if (this.fsm.state === 'closed') return;
    this.finish();
    this.ep?.reset(aipError('CHANNEL_CANCELLED'));
    if (this.live?.type.endsWithStream)
      void this.remote
        .end(this.sessionId, 'cancelled', 'the stream client disconnected')
        .catch(() => undefined);
  }

  drained(): void {
    this.pump();
  }

  private async start(bytes: Uint8Array, isBinary: boolean): Promise<void> {
    const msg = isBinary ? null : parseJson(bytes);
    if (!msg)
      return this.fail(
        aipError('STREAM_BAD_MESSAGE', { detail: 'the first frame must be {"token": "..."}' }),
        CloseCode.STREAM_BAD_MESSAGE,
      );
    this.fsm.go('opening');
    if (!this.gate.redeem(this.remote.tokens, this.sessionId, msg.token))
      return this.fail(aipError('STREAM_TOKEN_INVALID'), CloseCode.STREAM_TOKEN_INVALID);
    let live: LiveRemote;
    try {
      live = await this.remote.get(this.sessionId);
      const size = { rows: intIn(msg.rows, 24), cols: intIn(msg.cols, 80) };
      const plan = live.type.stream(live.params, size);
      if (!plan) throw aipError('REMOTE_UNSUPPORTED', { sid: live.id, type: live.type.name, op: 'streams' });
      this.live = live;
      this.stdio = plan.kind === 'stream';
      this.release = this.remote.hold(live);
      live.closers.add(this.closer);
      const ep = await this.remote.openChannel(live, plan.kind, plan.params);
      if (this.fsm.state === 'closed') return ep.reset(aipError('CHANNEL_CANCELLED'));
      this.ep = ep;
      ep.onReadable(() => this.pump());
      ep.onStateChange(() => {
        if (ep.state === 'reset')
          this.fail(ep.error ?? aipError('CHANNEL_CANCELLED'), CloseCode.STREAM_OPEN_FAILED);
      });
      this.fsm.go('open');
      this.remote.record(live, 'stream.opened', { kind: plan.kind, conn: this.conn.id });
      this.sendText({
        type: 'ready',
        session_id: live.id,
        session_type: live.type.name,
        pty: plan.pty && this.remote.capabilities(live).pty,
      });
      const early = this.held;
      this.held = [];
      this.heldBytes = 0;
      for (const f of early) if (this.fsm.state === 'open') this.message(f.bytes, f.isBinary);
      this.pump();
    } catch (err) {
      const e = err instanceof AipError ? err : aipError('CHANNEL_REJECTED', { reason: String(err) });
      this.fail(e, CloseCode.STREAM_OPEN_FAILED);
    }
  }

  /** Moves output from the channel to the socket while the socket keeps up. */
  private pump(): void {
    const ep = this.ep;
    if (!ep || this.fsm.state !== 'open') return;
    while (this.conn.bufferedBytes() <= this.opts.highWaterMarkBytes) {
      let c: Uint8Array | null | undefined;
      try {
        c = ep.take();
      } catch {
        return; // reset: the state listener closes the socket
      }
      if (c === undefined) return;
      if (c === null) return this.exit(ep.trailer ?? {});
      if (!this.stdio) {
        this.conn.send(c, true);
        continue;
      }
      const recs = this.decoder.push(c);
      if (recs instanceof AipError) return this.fail(recs, CloseCode.STREAM_OPEN_FAILED);
      for (const r of recs) {
        if (r.tag !== StdioTag.STDOUT && r.tag !== StdioTag.STDERR) continue;
        const out = new Uint8Array(r.payload.byteLength + 1);
        out[0] = r.tag;
        out.set(r.payload, 1);
        this.conn.send(out, true);
      }
    }
  }

  private input(bytes: Uint8Array): void {
    const ep = this.ep!;
    const frames = this.stdio ? encodeStdioChunks(StdioTag.STDIN, bytes) : [bytes];
    for (const f of frames) this.write(ep, f);
  }

  private control(msg: Record<string, unknown>): void {
    const ep = this.ep!;
    const bad = (detail: string): void =>
      this.fail(aipError('STREAM_BAD_MESSAGE', { detail }), CloseCode.STREAM_BAD_MESSAGE);
    switch (msg.type) {
      case 'resize': {
        const rows = intIn(msg.rows, 0);
        const cols = intIn(msg.cols, 0);
        if (rows < 1 || cols < 1) return bad('resize needs integer rows and cols (1–65535)');
        if (this.stdio) this.write(ep, encodeResize(rows, cols));
        return;
      }
      case 'eof':
        if (this.stdio) this.write(ep, encodeStdio(StdioTag.EOF));
        else void ep.end().catch(() => undefined);
        return;
      case 'signal':
        if (!this.stdio || !STDIO_SIGNALS.includes(msg.name as (typeof STDIO_SIGNALS)[number]))
          return bad(`signal name must be one of ${STDIO_SIGNALS.join(', ')}`);
        this.write(ep, encodeStdio(StdioTag.SIGNAL, msg.name as string));
        return;
      default:
        return bad(`unknown message type ${JSON.stringify(msg.type)}`);
    }
  }

  private write(ep: ChannelEndpoint, frame: Uint8Array): void {
    this.pendingIn += frame.byteLength;
    if (this.pendingIn > this.opts.inputMaxBytes)
      return this.fail(
        aipError('STREAM_INPUT_OVER_BUDGET', { max: this.opts.inputMaxBytes }),
        CloseCode.STREAM_INPUT_OVER_BUDGET,
      );
    ep.write(frame).then(
      () => {
        this.pendingIn -= frame.byteLength;
        if (this.live) this.remote.touch(this.live);
      },
      () => undefined,
    );
  }

  private exit(trailer: Record<string, unknown>): void {
    const exit = {
      exit_code: typeof trailer.exit_code === 'number' ? trailer.exit_code : null,
      signal: typeof trailer.signal === 'string' ? trailer.signal : null,
    };
    this.sendText({ type: 'exit', ...exit });
    const live = this.live!;
    // The device's side ended with its FIN; ours ends too, so the channel closes and frees its slot on the device's
    // connection (the client is being closed: nothing more goes to the device). Input still waiting for the
    // device's credit would hold the FIN back, so then the channel is reset instead.
    const ep = this.ep!;
    if (ep.stats().pendingWrites > 0) ep.reset(aipError('CHANNEL_CANCELLED'));
    else if (!ep.finished) ep.end().catch(() => ep.reset(aipError('CHANNEL_CANCELLED')));
    this.finish();
    this.conn.close(CloseCode.NORMAL, 'stream ended');
    this.remote.record(live, 'stream.exit', exit);
    if (live.type.endsWithStream)
      void this.remote
        .end(live.id, 'completed', `stream ended with exit code ${String(exit.exit_code)}`)
        .catch((err: unknown) => this.log.warn({ err }, 'ending the session failed'));
  }

  private fail(err: AipError, code: number): void {
    if (this.fsm.state === 'closed') return;
    this.log.info({ err: err.message, code }, 'stream closed');
    if (code !== CloseCode.NORMAL) this.sendText({ type: 'error', code: err.code, message: err.message });
    const wasOpen = this.fsm.state === 'open';
    this.finish();
    this.ep?.reset(err);
    this.conn.close(code, err.message); // the transport cuts it to what a close frame holds
    if (wasOpen && this.live?.type.endsWithStream)
      void this.remote.end(this.sessionId, 'failed', err.message).catch(() => undefined);
  }

  private finish(): void {
    this.gate.decide();
    if (this.fsm.state !== 'closed') this.fsm.go('closed');
    this.live?.closers.delete(this.closer);
    this.release?.();
    this.release = null;
  }

  private sendText(obj: Record<string, unknown>): void {
    this.conn.send(JSON.stringify(obj), false);
  }
}

/** Largest text frame a stream socket reads (its token and control messages); a larger one is not JSON to it. */
export const STREAM_CONTROL_MAX_BYTES = 64 * 1024;

function parseJson(bytes: Uint8Array): Record<string, unknown> | null {
  if (bytes.byteLength > STREAM_CONTROL_MAX_BYTES) return null;
  try {
    const v = JSON.parse(dec.decode(bytes)) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function intIn(v: unknown, dflt: number): number {
  return Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535 ? (v as number) : dflt;
}
