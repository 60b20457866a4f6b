/**
 * A scripted test double of an OpenAI-compatible chat-completions API: a `node:http` server on port 0 that answers
 * `POST /v1/chat/completions` from a script and records every request it receives (headers, parsed body, and
 * whether the client aborted it before the answer), so tests can check what aipd sent: the model, the tools
 * offered, the tool messages, the auth header. Always `close()` it in teardown.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ChatBody {
  model: string;
  messages: {
    role: string;
    content?: string | null;
    tool_call_id?: string;
    tool_calls?: { id: string; function: { name: string; arguments: string } }[];
  }[];
  tools?: {
    type: string;
    function: { name: string; description?: string; parameters: Record<string, unknown> };
  }[];
  tool_choice?: string;
  temperature?: number;
}

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: ChatBody;
  /** True once the client closed the connection before the answer was sent. */
  aborted: boolean;
}

/**
 * An answer: a status (200 by default), headers and a JSON body; `hang` (never answer); or `endless` (a 200 with no
 * Content-Length whose body streams on in 64 KiB chunks until the client leaves, or 256 MiB have gone); or `raw`
 * (a 200 whose body is that text as it is).
 */
export type Reply =
  | { status?: number; headers?: Record<string, string>; body?: unknown }
  | { hang: true }
  | { endless: true }
  | { raw: string };
/** Picks the answer to the `index`-th request (0-based). */
export type Script = (req: SeenRequest, index: number) => Reply;

export const USAGE = { prompt_tokens: 100, completion_tokens: 10, total_tokens: 110 };

/** A completion whose message calls tools: `[name, argumentsObjectOrRawText]`. */
export function toolCallsReply(calls: [string, Record<string, unknown> | string][], turn = 0): Reply {
  return {
    body: {
      id: `chatcmpl-${turn}`,
      object: 'chat.completion',
      choices: [
        {
          index: 0,
          finish_reason: 'tool_calls',
          message: {
            role: 'assistant',
            content: null,
            tool_calls: calls.map(([name, args], i) => ({
              id: `call_${turn}_${i}`,
              type: 'function',
              function: { name, arguments: typeof args === 'string' ? args : JSON.stringify(args) },
            })),
          },
        },
      ],
      usage: USAGE,
    },
  };
}

/** A completion that answers in text, with no tool call. */
export function answerReply(text: string): Reply {
  return {
    body: {
      id: 'chatcmpl-answer',
      object: 'chat.completion',
      choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: text } }],
      usage: USAGE,
    },
  };
}

export class OpenAiDouble {
  readonly requests: SeenRequest[] = [];
  private waiters: (() => void)[] = [];

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Starts the double; `script` is a list of answers in request order, or a function. */
  static async start(script: Reply[] | Script): Promise<OpenAiDouble> {
    const pick: Script = Array.isArray(script)
      ? (_r, i) =>
          script[i] ?? { status: 500, body: { error: { message: `no scripted answer for request ${i}` } } }
      : script;
    let double: OpenAiDouble | null = null;
    const server = createServer((req, res) => {
      let raw = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (raw += d));
      req.on('end', () => {
        let body: ChatBody;
        try {
          body = JSON.parse(raw) as ChatBody;
        } catch {
          body = { model: '', messages: [] };
        }
        const seen: SeenRequest = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body,
          aborted: false,
        };
        const d = double!;
        const index = d.requests.push(seen) - 1;
        res.on('close', () => {
          if (!res.writableFinished) seen.aborted = true;
          d.notify();
        });
        d.notify();
        const reply = pick(seen, index);
        if ('hang' in reply) return;
        if ('endless' in reply) return void endless(res);
        if ('raw' in reply) {
          res.writeHead(200, { 'content-type': 'application/json' });
          return void res.end(reply.raw);
        }
        res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
        res.end(JSON.stringify(reply.body ?? {}));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    double = new OpenAiDouble(server, (server.address() as AddressInfo).port);
    return double;
  }

  /** The base URL to give aipd (`--llm-base-url`). */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  /** Resolves once `cond` holds, checked after every request and every closed request. */
  async until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`openai double: timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** Streams `{"choices":[{"message":{"content":"xxx…` on and on, bounded, until the client leaves. */
function endless(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write('{"choices":[{"message":{"content":"');
  const chunk = 'x'.repeat(64 * 1024);
  let sent = 0;
  const more = (): void => {
    while (!res.destroyed && sent < 256 * 1024 * 1024) {
      sent += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', more);
    }
    if (!res.destroyed) res.end('"}}]}');
  };
  more();
}
