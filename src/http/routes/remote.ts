/**
 * Remote execution on a typed session, with routes named after Backend.AI's: execute (query and batch, JSON or
 * server-sent events), interrupt, a fresh stream token, and the session's log as text. Files are in
 * remote-files.ts, services in remote-services.ts; typed creation is in sessions.ts (POST /sessions).
 */
import { notFoundDoc, ok } from '../route-docs.js';
import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod';
import { aipError } from '../../../protocol/index.js';
import type { LiveRemote, RemoteExecution } from '../../remote/index.js';
import type { OutputSink, QueryResult } from '../../remote/execute.js';
import { sessionJson, type SessionRecord } from '../../state/session-model.js';
import type { HttpResponse } from '../../transport/http.js';
import type { ApiDeps } from '../deps.js';
import { json } from '../responses.js';
import type { Route } from '../router.js';
import { iterableStream } from '../stream-body.js';
import { jsonObject, parseBody } from '../validation.js';
import { liveDocs, pathDocs, remoteError } from './remote-errors.js';

const timeoutMs = z.number().int().positive().optional();
const ExecuteBody = z.discriminatedUnion('mode', [
  z.object({
    mode: z.literal('query'),
    code: z
      .string()
      .min(1)
      .max(64 * 1024),
    timeout_ms: timeoutMs,
    cwd: z.string().min(1).max(4096).optional(),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string().max(32 * 1024)).optional(),
  }),
  z.object({
    mode: z.literal('batch'),
    actions: z
      .array(
        z.object({
          tool_name: z.string().min(1).max(256),
          parameters: jsonObject.nullable().optional(),
          tool_type: z.enum(['action', 'data_collection']).optional(),
        }),
      )
      .min(1)
      .max(256),
    agent_name: z.string().min(1).max(256).optional(),
    timeout_ms: timeoutMs,
  }),
]);

/** Lines of a session's log answered at most (the log itself is capped by --event-log-max). */
const LOG_PAGE = 1000;
/** SSE bytes an execute stream may have waiting for its reader before the device is stalled. */
const SSE_BUFFER_BYTES = 256 * 1024;

/** The answer to creating a typed session: the record, plus the stream URL and token for stream types. */
export function startAnswer(
  remote: RemoteExecution,
  record: SessionRecord,
  live: LiveRemote,
  host: string | undefined,
): Record<string, unknown> {
  const body: Record<string, unknown> = sessionJson(record);
  if (live.type.hasStream) Object.assign(body, streamCredentials(remote, live.id, host));
  return body;
}

function streamCredentials(
  remote: RemoteExecution,
  id: string,
  host: string | undefined,
): Record<string, unknown> {
  const { token, expiresAt } = remote.sessions.tokens.issue(id);
  return {
    stream_url: `${remote.streamBase(host)}/sessions/${encodeURIComponent(id)}/stream`,
    ssm_stream_url: `${remote.streamBase(host)}/sessions/${encodeURIComponent(id)}/ssm`,
    token_value: token,
    token_expires_at: expiresAt,
  };
}

export function remoteRoutes(deps: ApiDeps): Route[] {
  const remote = deps.remote;
  const withLive = async (
    id: string,
    fn: (live: LiveRemote) => Promise<HttpResponse>,
  ): Promise<HttpResponse> => {
    try {
      return await fn(await remote.sessions.get(id));
    } catch (err) {
      return remoteError(err);
    }
  };
  return [
    {
      method: 'POST',
      path: '/sessions/:id/token',
      doc: {
        summary: 'A fresh single-use token for the session’s stream WebSocket',
        tag: 'remote',
        responses: { 200: ok('stream_url and token_value'), ...liveDocs },
      },
      handle: ({ params, req }) =>
        withLive(params.id!, (live) => {
          if (!live.type.hasStream)
            return Promise.reject(
              aipError('REMOTE_UNSUPPORTED', { sid: live.id, type: live.type.name, op: 'streams' }),
            );
          return Promise.resolve(json(200, streamCredentials(remote, live.id, req.headers.host)));
        }),
    },
    {
      method: 'POST',
      path: '/sessions/:id/execute',
      doc: {
        summary:
          'Run code or a batch of tool calls on the device (JSON, or SSE with Accept: text/event-stream)',
        tag: 'remote',
        body: ExecuteBody,
        responses: {
          200: { description: 'The result, or its progress as SSE', contentType: 'text/event-stream' },
          ...pathDocs,
        },
      },
      body: 'json',
      handle: async ({ params, req }) => {
        const parsed = parseBody(ExecuteBody, req.body);
        if (!parsed.ok) return parsed.res;
        const b = parsed.value;
        const limit = remote.config.executeTimeoutMs;
        const ms = Math.min(b.timeout_ms ?? limit, limit);
        return withLive(params.id!, async (live) => {
          remote.sessions.touch(live);
          if (b.mode === 'batch') {
            const r = await whileClientWaits(req.signal, live, () =>
              remote.exec.batch(live, {
                actions: b.actions,
                agentName: b.agent_name ?? null,
                timeoutMs: ms,
              }),
            );
            remote.sessions.record(live, 'remote.execute', {
              mode: 'batch',
              tools: b.actions.map((a) => a.tool_name),
              status: r.status,
              duration_ms: r.duration_ms,
            });
            return json(200, r);
          }
          const q = {
            code: b.code,
            timeoutMs: ms,
            ...(b.cwd ? { cwd: b.cwd } : {}),
            ...(b.env ? { env: b.env } : {}),
          };
          const recordEnd = (r: QueryResult): void =>
            remote.sessions.record(live, 'remote.execute', {
              mode: 'query',
              code: b.code.slice(0, 1024),
              status: r.status,
              exit_code: r.exit_code,
              duration_ms: r.duration_ms,
            });
          if (!(req.headers.accept ?? '').includes('text/event-stream')) {
            const r = await whileClientWaits(req.signal, live, () => remote.exec.query(live, q, null));
            recordEnd(r);
            return json(200, r);
          }
          const out = new SseOutput();
          const running = remote.exec.query(live, q, out);
          // A refusal before anything ran (busy, no exec) is still an HTTP error, not a stream.
          const early = await Promise.race([
            running.then(
              () => null,
              (err: unknown) => err,
            ),
            out.started.then(() => undefined),
          ]);
          if (early !== undefined && early !== null) return remoteError(early);
          running.then(
            (r: QueryResult) => {
              recordEnd(r);
              out.finish('exit', r);
            },
            (err: unknown) =>
              out.finish('error', {
                status: 'failed',
                error: err instanceof Error ? err.message : String(err),
              }),
          );
          return {
            status: 200,
            body: null,
            headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store' },
            // A client that leaves (even before the first event) interrupts the run.
            stream: iterableStream(out.events(), deps.log, () => {
              if (!out.finished) live.execution?.interrupt();
            }),
          };
        });
      },
    },
    {
      method: 'POST',
      path: '/sessions/:id/interrupt',
      doc: {
        summary: 'Interrupt the running execute',
        tag: 'remote',
        responses: { 200: ok('Whether something was interrupted'), ...liveDocs },
      },
      handle: ({ params }) =>
        withLive(params.id!, (live) => {
          const running = live.execution;
          running?.interrupt();
          remote.sessions.record(live, 'remote.interrupt', { running: running !== null });
          return Promise.resolve(json(200, { interrupted: running !== null }));
        }),
    },
    {
      method: 'GET',
      path: '/sessions/:id/logs',
      doc: {
        summary: 'The session’s output log',
        tag: 'remote',
        responses: { 200: { description: 'Plain text', contentType: 'text/plain' }, 404: notFoundDoc },
      },
      handle: async ({ params }) => {
        const id = params.id!;
        if (!(await deps.sessions.get(id))) return remoteError(aipError('HTTP_SESSION_NOT_FOUND'));
        // Streamed a page at a time, at the reader's pace: a log of large events is never held whole.
        async function* lines(): AsyncGenerator<string> {
          for await (const page of deps.sessions.eventPages(id, LOG_PAGE))
            yield page.map((e) => `${e.at} ${e.type} ${JSON.stringify(e.data)}\n`).join('');
        }
        return {
          status: 200,
          body: null,
          headers: { 'content-type': 'text/plain; charset=utf-8' },
          stream: iterableStream(lines(), deps.log),
        };
      },
    },
  ];
}

/**
 * Execute output as server-sent events: `stdout` and `stderr` events ({"data": text}), then one `exit` event with
 * the result (or `error`). Holds at most SSE_BUFFER_BYTES for a slow reader; `ready()` makes the device wait.
 */
class SseOutput implements OutputSink {
  private readonly queue: string[] = [];
  private bytes = 0;
  private done = false;
  private wakeReader: (() => void) | null = null;
  private readonly wakeWriter: (() => void)[] = [];
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  private markStarted: () => void = () => undefined;
  /** Resolves once the device began to answer (the HTTP head can then go out as a stream). */
  readonly started = new Promise<void>((r) => (this.markStarted = r));

  output(stream: 'stdout' | 'stderr', bytes: Uint8Array): void {
    const text = this.decoders[stream].write(Buffer.from(bytes));
    if (text) this.push(`event: ${stream}\ndata: ${JSON.stringify({ data: text })}\n\n`);
  }

  ready(): Promise<void> {
    this.markStarted();
    return this.bytes < SSE_BUFFER_BYTES ? Promise.resolve() : new Promise((r) => this.wakeWriter.push(r));
  }

  finish(event: 'exit' | 'error', data: unknown): void {
    this.markStarted();
    for (const s of ['stdout', 'stderr'] as const) {
      const rest = this.decoders[s].end();
      if (rest) this.push(`event: ${s}\ndata: ${JSON.stringify({ data: rest })}\n\n`);
    }
    this.push(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    this.done = true;
    this.wake();
  }

  /** True once the run's last event is queued. */
  get finished(): boolean {
    return this.done;
  }

  /** The events, in order, until the last one. */
  async *events(): AsyncGenerator<string> {
    try {
      for (;;) {
        const next = this.queue.shift();
        if (next !== undefined) {
          this.bytes -= next.length;
          if (this.bytes < SSE_BUFFER_BYTES) for (const w of this.wakeWriter.splice(0)) w();
          yield next;
          continue;
        }
        if (this.done) break;
        await new Promise<void>((r) => (this.wakeReader = r));
      }
    } finally {
      for (const w of this.wakeWriter.splice(0)) w();
    }
  }

  private push(s: string): void {
    this.queue.push(s);
    this.bytes += s.length;
    this.wake();
  }

  private wake(): void {
    const w = this.wakeReader;
    this.wakeReader = null;
    w?.();
  }
}

/**
 * Runs a JSON execute call (query or batch) while its client waits: a client that goes away before the answer
 * interrupts the call, as one reading the SSE form does, so the session is not left busy with work nobody reads.
 * Only the call `run` started is interrupted (a call refused as busy started none).
 */
async function whileClientWaits<T>(
  signal: AbortSignal | undefined,
  live: LiveRemote,
  run: () => Promise<T>,
): Promise<T> {
  if (!signal) return run();
  const before = live.execution;
  const p = run(); // takes the session's execute slot at once, or is refused
  const mine = live.execution !== before ? live.execution : null;
  if (!mine) return p;
  const gone = (): void => mine.interrupt();
  if (signal.aborted) gone();
  else signal.addEventListener('abort', gone, { once: true });
  try {
    return await p;
  } finally {
    signal.removeEventListener('abort', gone);
  }
}
