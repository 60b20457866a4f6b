/**
 * `execute` on a remote session (Backend.AI's modes):
 *
 * - `query` runs `code` as a shell command on the device. On an aipd device it runs in a `stream` channel with
 *   stdio framing, so stdout and stderr arrive separately and as they come, an interrupt or timeout resets the
 *   channel (the device kills the process group), and a slow reader stalls the device instead of growing memory.
 *   On a device that serves no channels (UFO's clients) it is one AIP `command` with the `execute_command` tool.
 * - `batch` sends AIP actions as one `command` frame and answers with the Results.
 *
 * One execute call runs per session at a time (REMOTE_BUSY otherwise), as Backend.AI serializes runs per kernel.
 */
import {
  aipError,
  AipError,
  StdioDecoder,
  StdioTag,
  encodeStdio,
  type ClientMessage,
  type Result,
} from '../../protocol/index.js';
import type { ChannelEndpoint } from '../channel/endpoint.js';
import { CommandDispatcher } from '../server/command-dispatcher.js';
import type { ResultsSink } from '../server/context.js';
import type { ClientDirectory, ClientInfo } from '../state/client-directory.js';
import type { LiveRemote, RemoteSessions } from './remote-sessions.js';

export type ExecStatus = 'finished' | 'failed' | 'timeout' | 'interrupted';

export interface QueryRequest {
  readonly code: string;
  readonly timeoutMs: number;
  readonly cwd?: string;
  readonly env?: Record<string, string>;
}

export interface QueryResult {
  status: ExecStatus;
  exit_code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  duration_ms: number;
  truncated: boolean;
  error?: string;
}

export interface BatchRequest {
  readonly actions: {
    tool_name: string;
    parameters?: Record<string, unknown> | null;
    tool_type?: 'action' | 'data_collection';
  }[];
  readonly agentName: string | null;
  readonly timeoutMs: number;
}

export interface BatchResult {
  status: ExecStatus;
  results: Result[];
  duration_ms: number;
  error?: string;
}

/** Where a streamed execute writes; `ready()` resolves when it can take more (backpressure). */
export interface OutputSink {
  output(stream: 'stdout' | 'stderr', bytes: Uint8Array): void;
  ready(): Promise<void>;
}

/** Default agent_name of a batch, by platform (the session classes' first routing). */
const AGENT_BY_PLATFORM: Readonly<Record<string, string>> = {
  windows: 'HostAgent',
  linux: 'LinuxAgent',
  mobile: 'MobileAgent',
};

export class RemoteExecutor implements ResultsSink {
  /** Batches in flight per session, for routing `command_results`. */
  private readonly dispatchers = new Map<string, CommandDispatcher>();

  constructor(
    private readonly remote: RemoteSessions,
    private readonly directory: ClientDirectory,
    private readonly outputMaxBytes: number,
  ) {}

  deliverResults(sender: ClientInfo, msg: ClientMessage): boolean {
    const d = msg.session_id ? this.dispatchers.get(msg.session_id) : undefined;
    if (!d || this.remote.parties(msg.session_id!)?.executorId !== sender.clientId) return false;
    return d.deliver(msg.prev_response_id, msg.action_results);
  }

  /** A device went away: its sessions' pending batches fail now rather than at their timeout. */
  deviceGone(clientId: string): void {
    for (const [sid, d] of this.dispatchers)
      if (this.remote.parties(sid)?.executorId === clientId)
        d.executorGone(aipError('DEVICE_DISCONNECTED').message);
  }

  async query(live: LiveRemote, req: QueryRequest, sink: OutputSink | null): Promise<QueryResult> {
    const caps = this.remote.capabilities(live);
    if (caps.channels.length > 0 && !(caps.channels.includes('stream') && caps.exec))
      throw aipError('REMOTE_DEVICE_CANNOT', { id: live.agentId, what: 'running commands (--allow-exec)' });
    return this.exclusive(live, (stop) =>
      caps.channels.includes('stream')
        ? this.queryByChannel(live, req, sink, stop)
        : this.queryByCommand(live, req, stop),
    );
  }

  async batch(live: LiveRemote, req: BatchRequest): Promise<BatchResult> {
    return this.exclusive(live, async (stop) => {
      const started = Date.now();
      const info = this.directory.get(live.agentId);
      if (!info) throw aipError('REMOTE_DEVICE_OFFLINE', { id: live.agentId });
      const outcome = await this.commands(
        live,
        req.actions,
        req.agentName ?? AGENT_BY_PLATFORM[info.platform] ?? null,
        req.timeoutMs,
        stop,
      );
      return { ...outcome, duration_ms: Date.now() - started };
    });
  }

  /** Runs `fn` as the session's one execute call; `stop` aborts with the reason interrupt() or the timeout gave. */
  private async exclusive<T>(live: LiveRemote, fn: (stop: AbortSignal) => Promise<T>): Promise<T> {
    if (live.execution) throw aipError('REMOTE_BUSY', { sid: live.id });
    const ctl = new AbortController();
    const interrupt = (): void => ctl.abort('interrupted');
    live.execution = { interrupt };
    live.closers.add(interrupt);
    const release = this.remote.hold(live);
    try {
      return await fn(ctl.signal);
    } finally {
      live.execution = null;
      live.closers.delete(interrupt);
      release();
    }
  }

  private async queryByChannel(
    live: LiveRemote,
    req: QueryRequest,
    sink: OutputSink | null,
    stop: AbortSignal,
  ): Promise<QueryResult> {
    const started = Date.now();
    const result: QueryResult = {
      status: 'finished',
      exit_code: null,
      signal: null,
      stdout: '',
      stderr: '',
      duration_ms: 0,
      truncated: false,
    };
    const out = { stdout: new Capped(this.outputMaxBytes), stderr: new Capped(this.outputMaxBytes) };
    // One end for the whole run, the device's answer to the OPEN included: timeout_ms, or an interrupt.
    let why: ExecStatus | null = null;
    const ended = new AbortController();
    const end = (reason: ExecStatus): void => {
      if (why !== null) return;
      why = reason;
      ended.abort();
    };
    const onStop = (): void => end('interrupted');
    stop.addEventListener('abort', onStop, { once: true });
    const timer = setTimeout(() => end('timeout'), req.timeoutMs);
    timer.unref();
    if (stop.aborted) onStop();
    const done = (): void => {
      clearTimeout(timer);
      stop.removeEventListener('abort', onStop);
    };
    let ep: ChannelEndpoint;
    try {
      ep = await this.remote.openChannel(
        live,
        'stream',
        {
          framing: 'stdio',
          mode: 'command',
          command: req.code,
          shell: true,
          ...(req.cwd !== undefined ? { cwd: req.cwd } : {}),
          ...(req.env !== undefined ? { env: req.env } : {}),
        },
        ended.signal,
      );
    } catch (err) {
      done();
      // Ended (interrupted, the session deleted, or out of time) while the device was opening the channel: the
      // channel's reset is the consequence, the interrupt or the timeout the answer.
      const status = why as ExecStatus | null;
      if (status === null) throw err;
      return { ...result, status, duration_ms: Date.now() - started };
    }
    let halt: () => void = () => undefined;
    /** Settles when the run is ended (interrupt or timeout), so a wait on a slow reader ends too. */
    const halted = new Promise<void>((r) => (halt = r));
    const onEnd = (): void => {
      ep.reset(aipError('CHANNEL_CANCELLED'));
      halt();
    };
    ended.signal.addEventListener('abort', onEnd, { once: true });
    if (ended.signal.aborted) onEnd();
    try {
      void ep.write(encodeStdio(StdioTag.EOF)).catch(() => undefined); // nothing comes on stdin
      const decoder = new StdioDecoder();
      for (;;) {
        if (sink) await Promise.race([sink.ready(), halted]);
        const chunk = await ep.read();
        if (chunk === null) break;
        const recs = decoder.push(chunk);
        if (recs instanceof AipError) {
          ep.reset(recs);
          throw recs;
        }
        for (const r of recs) {
          const name = r.tag === StdioTag.STDERR ? 'stderr' : r.tag === StdioTag.STDOUT ? 'stdout' : null;
          if (!name) continue;
          out[name].add(r.payload);
          sink?.output(name, r.payload);
        }
      }
      const t = ep.trailer ?? {};
      result.exit_code = typeof t.exit_code === 'number' ? t.exit_code : null;
      result.signal = typeof t.signal === 'string' ? t.signal : null;
    } catch (err) {
      const status = why as ExecStatus | null;
      result.status = status ?? 'failed';
      if (status === null) result.error = err instanceof Error ? err.message : String(err);
    } finally {
      done();
      ended.signal.removeEventListener('abort', onEnd);
      // The device's FIN ended its side; ours ends here, so the channel closes and its slot on the connection is
      // freed (left half-closed, each run held one, and the connection refused channels after its limit).
      if (!ep.finished) ep.end().catch(() => ep.reset(aipError('CHANNEL_CANCELLED')));
    }
    result.stdout = out.stdout.text();
    result.stderr = out.stderr.text();
    result.truncated = out.stdout.truncated || out.stderr.truncated;
    result.duration_ms = Date.now() - started;
    return result;
  }

  /** `query` on a device with no channels: its `execute_command` tool, through one AIP command. */
  private async queryByCommand(live: LiveRemote, req: QueryRequest, stop: AbortSignal): Promise<QueryResult> {
    const started = Date.now();
    const o = await this.commands(
      live,
      [{ tool_name: 'execute_command', parameters: { command: req.code } }],
      null,
      req.timeoutMs,
      stop,
    );
    const r = o.results[0];
    const v = r?.result;
    const obj =
      v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
    const text = (x: unknown): string =>
      typeof x === 'string' ? x : x === undefined || x === null ? '' : JSON.stringify(x);
    return {
      status: o.status === 'finished' && r?.status === 'failure' && !obj ? 'failed' : o.status,
      exit_code:
        typeof obj?.exit_code === 'number' ? obj.exit_code : r ? (r.status === 'success' ? 0 : 1) : null,
      signal: null,
      stdout: obj && 'stdout' in obj ? text(obj.stdout) : text(v),
      stderr: obj && 'stderr' in obj ? text(obj.stderr) : text(r?.error),
      duration_ms: Date.now() - started,
      truncated: false,
      ...(o.error ? { error: o.error } : {}),
    };
  }

  /** One AIP command batch to the session's device, through a dispatcher registered for its results. */
  private async commands(
    live: LiveRemote,
    actions: BatchRequest['actions'],
    agentName: string | null,
    timeoutMs: number,
    stop: AbortSignal,
  ): Promise<{ status: ExecStatus; results: Result[]; error?: string }> {
    const dispatcher = new CommandDispatcher({
      sessionId: live.id,
      taskName: `execute-${live.id}`,
      executorId: live.agentId,
      executor: () => this.directory.link(live.agentId),
      timeoutMs,
      log: live.log,
    });
    this.dispatchers.set(live.id, dispatcher);
    try {
      const results = await dispatcher.execute(
        {
          agent_name: agentName,
          actions: actions.map((a) => ({
            tool_name: a.tool_name,
            parameters: a.parameters ?? null,
            tool_type: a.tool_type ?? 'action',
          })),
        },
        stop,
      );
      const timedOut = results.some(
        (r) => r.status === 'failure' && /timed out|timeout/i.test(r.error ?? ''),
      );
      return { status: timedOut ? 'timeout' : 'finished', results };
    } catch (err) {
      if (stop.aborted) return { status: 'interrupted', results: [] };
      return { status: 'failed', results: [], error: err instanceof Error ? err.message : String(err) };
    } finally {
      dispatcher.dispose();
      if (this.dispatchers.get(live.id) === dispatcher) this.dispatchers.delete(live.id);
    }
  }
}

/** Output kept up to a byte cap; the rest is counted and dropped. */
class Capped {
  private readonly parts: Uint8Array[] = [];
  private bytes = 0;
  truncated = false;
  constructor(private readonly max: number) {}
  add(b: Uint8Array): void {
    const room = this.max - this.bytes;
    if (room <= 0) {
      this.truncated ||= b.byteLength > 0;
      return;
    }
    const part = b.byteLength > room ? b.subarray(0, room) : b;
    if (part !== b) this.truncated = true;
    this.parts.push(part);
    this.bytes += part.byteLength;
  }
  text(): string {
    return Buffer.concat(this.parts).toString('utf8');
  }
}
