/**
 * The chat-completions client against the OpenAI double: URL and auth headers, which answers are retried and which
 * are not, Retry-After, timeouts and aborts (the double sees the request torn down), lenient parsing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { aipError, AipError } from '../../../protocol/index.js';
import {
  backoffMs,
  ChatClient,
  completionsUrl,
  retryAfterMs,
  type ChatClientOptions,
} from '../../../src/agents/llm/chat-client.js';
import { answerReply, OpenAiDouble, type Reply } from '../../helpers/openai-double.js';

const doubles: OpenAiDouble[] = [];
afterEach(async () => {
  for (const d of doubles.splice(0)) await d.close();
});

async function client(
  script: Reply[],
  opts: Partial<ChatClientOptions> = {},
): Promise<{ double: OpenAiDouble; client: ChatClient }> {
  const double = await OpenAiDouble.start(script);
  doubles.push(double);
  const c = new ChatClient({
    baseUrl: double.baseUrl,
    apiKey: 'sk-unit',
    timeoutMs: 10_000,
    retries: 3,
    retryBaseMs: 5,
    retryMaxMs: 5_000,
    ...opts,
  });
  return { double, client: c };
}

const REQ = { model: 'm', messages: [{ role: 'user' as const, content: 'hi' }] };
const never = new AbortController().signal;

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe('ChatClient', () => {
  it('posts to {baseUrl}/chat/completions with the bearer key and returns the first choice', async () => {
    const { double, client: c } = await client([answerReply('hello')]);
    const reply = await c.complete(REQ, never);
    expect(reply).toMatchObject({ content: 'hello', tool_calls: [], finish_reason: 'stop', attempts: 1 });
    expect(reply.usage.total_tokens).toBe(110);
    expect(double.requests[0]).toMatchObject({ method: 'POST', path: '/v1/chat/completions', body: REQ });
    expect(double.requests[0]!.headers.authorization).toBe('Bearer sk-unit');
  });

  it("sends Azure's api-key header instead when asked, and no key at all without one", async () => {
    const { double, client: c } = await client([answerReply('a')], { authHeader: 'api-key' });
    await c.complete(REQ, never);
    expect(double.requests[0]!.headers['api-key']).toBe('sk-unit');
    expect(double.requests[0]!.headers.authorization).toBeUndefined();
    const { double: d2, client: c2 } = await client([answerReply('b')], { apiKey: undefined });
    await c2.complete(REQ, never);
    expect(d2.requests[0]!.headers.authorization).toBeUndefined();
  });

  it('retries 429 and 5xx, then fails with the last answer once the retries are spent', async () => {
    const busy: Reply = { status: 503, body: { error: { message: 'overloaded' } } };
    const { double, client: c } = await client([busy, busy, busy], { retries: 2 });
    const err = await rejection(c.complete(REQ, never));
    expect(err).toBeInstanceOf(AipError);
    expect((err as Error).message).toBe(
      aipError('LLM_HTTP_ERROR', { status: 503, detail: 'overloaded' }).message,
    );
    expect(double.requests).toHaveLength(3);
  });

  it('never quotes the key or the query of the URL in an error, from an answer or from a failed connection', async () => {
    // An endpoint whose error page echoes what it was sent (the key, the query), as some proxies do.
    const echo: Reply = {
      status: 400,
      body: { error: { message: 'bad key sk-unit for api_key=q-SECRET-1' } },
    };
    const { double } = await client([echo]);
    const withQuery = new ChatClient({
      baseUrl: `${double.baseUrl}?api_key=q-SECRET-1`,
      apiKey: 'sk-unit',
      timeoutMs: 10_000,
      retries: 0,
      retryBaseMs: 5,
      retryMaxMs: 5_000,
    });
    const answered = (await rejection(withQuery.complete(REQ, never))) as Error;
    expect(answered.message).toBe('The LLM endpoint answered HTTP 400: bad key *** for api_key=***');
    expect(double.requests[0]!.path).toBe('/v1/chat/completions?api_key=q-SECRET-1');
    // Nothing listens on the double's port once it is closed: a network error, which quotes the URL.
    await double.close();
    const unreachable = (await rejection(withQuery.complete(REQ, never))) as Error;
    expect(unreachable.message).toMatch(
      /^The LLM endpoint http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions\?api_key=\*\*\* is unreachable: /,
    );
    expect(unreachable.message).not.toContain('SECRET');
    expect(unreachable.message).not.toContain('sk-unit');
  });

  it('does not retry other 4xx answers', async () => {
    const { double, client: c } = await client([{ status: 401, body: { error: { message: 'bad key' } } }]);
    const err = await rejection(c.complete(REQ, never));
    expect((err as Error).message).toBe('The LLM endpoint answered HTTP 401: bad key');
    expect(double.requests).toHaveLength(1);
  });

  it('fails at once when Retry-After asks for longer than --llm-retry-max-ms', async () => {
    const { double, client: c } = await client([{ status: 429, headers: { 'retry-after': '120' } }], {
      retryMaxMs: 1_000,
    });
    const err = await rejection(c.complete(REQ, never));
    expect((err as Error).message).toBe(
      aipError('LLM_RETRY_AFTER_TOO_LONG', { ms: 120_000, max: 1_000 }).message,
    );
    expect(double.requests).toHaveLength(1);
  });

  it('times an attempt out, tears the request down, and does not retry it', async () => {
    const { double, client: c } = await client([{ hang: true }], { timeoutMs: 200 });
    const err = await rejection(c.complete(REQ, never));
    expect((err as Error).message).toBe(aipError('LLM_TIMEOUT', { ms: 200 }).message);
    await double.until(() => double.requests[0]!.aborted, 'the abort');
    expect(double.requests).toHaveLength(1);
  });

  it("rejects with the caller's reason when aborted during a backoff wait", async () => {
    const { double, client: c } = await client([{ status: 429, headers: { 'retry-after': '30' } }], {
      retryMaxMs: 60_000,
    });
    const ac = new AbortController();
    const p = rejection(c.complete(REQ, ac.signal));
    await double.until(() => double.requests.length === 1, 'the first attempt');
    const reason = new Error('cancelled by test');
    ac.abort(reason);
    expect(await p).toBe(reason);
    expect(double.requests).toHaveLength(1);
  });

  it('says what is wrong with an answer that is not a chat completion, without retrying', async () => {
    const { double, client: c } = await client([{ body: { choices: [] } }]);
    const err = await rejection(c.complete(REQ, never));
    expect((err as Error).message).toMatch(/^The LLM endpoint's answer is not a chat completion: choices: /);
    expect(double.requests).toHaveLength(1);
  });

  it('refuses an answer over maxResponseBytes, declared or streamed, without retrying or reading it all', async () => {
    const { double, client: c } = await client([answerReply('x'.repeat(100_000)), { endless: true }], {
      maxResponseBytes: 8_192,
    });
    const declared = await rejection(c.complete(REQ, never));
    expect((declared as Error).message).toBe(
      "The LLM endpoint's answer is not a chat completion: the body is larger than 8192 bytes (--llm-max-response-bytes)",
    );
    const streamed = await rejection(c.complete(REQ, never));
    expect((streamed as Error).message).toBe((declared as Error).message);
    expect(double.requests).toHaveLength(2);
    await double.until(() => double.requests[1]!.aborted, 'the endless answer torn down');
  });

  it('still retries an error answer whose page is larger than maxResponseBytes (it is cut, not refused)', async () => {
    const page = { status: 503, headers: { 'content-type': 'text/html' }, body: 'x'.repeat(100_000) };
    const { double, client: c } = await client([page, answerReply('after the error page')], {
      maxResponseBytes: 8_192,
    });
    const reply = await c.complete(REQ, never);
    expect(reply.content).toBe('after the error page');
    expect(reply.attempts).toBe(2);
    expect(double.requests).toHaveLength(2);
  });

  it('reads an answer that starts with a UTF-8 byte order mark', async () => {
    const { client: c } = await client([{ raw: '\uFEFF{"choices":[{"message":{"content":"with a BOM"}}]}' }]);
    expect((await c.complete(REQ, never)).content).toBe('with a BOM');
  });

  it('does not send a conversation over maxConversationBytes', async () => {
    const { double, client: c } = await client([answerReply('never asked')], {
      maxConversationBytes: 65_536,
    });
    const big = { model: 'm', messages: [{ role: 'user' as const, content: 'y'.repeat(70_000) }] };
    const err = await rejection(c.complete(big, never));
    expect(err).toBeInstanceOf(AipError);
    expect((err as AipError).kind).toBe('LLM_CONVERSATION_TOO_LARGE');
    expect(double.requests).toHaveLength(0);
  });

  it('refuses an answer nested deeper than 64 levels (tool arguments included) before parsing it', async () => {
    const nested = '{"a":'.repeat(20_000) + '{}' + '}'.repeat(20_000);
    const raw = `{"choices":[{"message":{"content":null,"tool_calls":[{"function":{"name":"t","arguments":${nested}}}]}}]}`;
    const { client: c } = await client([{ raw }]);
    const err = await rejection(c.complete(REQ, never));
    expect((err as Error).message).toBe(
      "The LLM endpoint's answer is not a chat completion: the body is nested deeper than 64 levels",
    );
  });

  it('accepts object arguments, missing call ids and missing usage (Ollama and friends)', async () => {
    const { client: c } = await client([
      {
        body: {
          choices: [
            {
              message: { content: '', tool_calls: [{ function: { name: 'f', arguments: { a: 1 } } }] },
              finish_reason: 'tool_calls',
            },
          ],
        },
      },
    ]);
    const reply = await c.complete(REQ, never);
    expect(reply.tool_calls).toEqual([
      { id: 'call_0', type: 'function', function: { name: 'f', arguments: '{"a":1}' } },
    ]);
    expect(reply.usage).toEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
  });
});

describe('retry helpers', () => {
  it('builds the completions URL keeping a query (Azure api-version) and dropping a trailing slash', () => {
    expect(completionsUrl('http://localhost:11434/v1/')).toBe('http://localhost:11434/v1/chat/completions');
    expect(completionsUrl('https://r.openai.azure.com/openai/v1?api-version=preview')).toBe(
      'https://r.openai.azure.com/openai/v1/chat/completions?api-version=preview',
    );
  });

  it('reads retry-after-ms first, then Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '150', 'retry-after': '9' }), now)).toBe(150);
    expect(retryAfterMs(new Headers({ 'retry-after': '2' }), now)).toBe(2000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }), now)).toBe(3000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'soon' }), now)).toBeNull();
    expect(retryAfterMs(new Headers(), now)).toBeNull();
  });

  it('doubles the backoff per retry up to the cap, with half of it random', () => {
    expect([0, 1, 2, 3].map((n) => backoffMs(n, 100, 500, 0))).toEqual([50, 100, 200, 250]);
    expect([0, 1, 2, 3].map((n) => backoffMs(n, 100, 500, 0.999999))).toEqual([100, 200, 400, 500]);
  });
});
