/**
 * A client for the chat-completions API of any OpenAI-compatible endpoint (OpenAI, Azure OpenAI, vLLM, Ollama,
 * LM Studio, OpenRouter), on Node's global `fetch`: no SDK, so nothing but the wire format is assumed.
 *
 * - One call is `POST {baseUrl}/chat/completions`, bounded by `timeoutMs` per attempt and aborted at once when the
 *   caller's signal aborts (the HTTP request is torn down, not left to finish).
 * - Retried: network errors, 408, 429 and 5xx, up to `retries` more attempts, with exponential backoff and jitter.
 *   A `retry-after-ms` or `Retry-After` header (seconds or an HTTP date) is honoured exactly; one asking for longer
 *   than `retryMaxMs` fails at once rather than hammering the endpoint early.
 * - Not retried: other 4xx (a bad key, an unknown model), a timeout, an answer that is not a chat completion.
 * - Every failure is an AipError from the catalogue (LLM_*), so it can go to `task_end.error` as it is.
 */
import { aipError, type AipError } from '../../../protocol/index.js';
import { parseCompletion, type ChatReply, type ChatRequest } from './chat-types.js';

export interface ChatClientOptions {
  /** e.g. `https://api.openai.com/v1` or `http://localhost:11434/v1`; a query (Azure's api-version) is kept. */
  readonly baseUrl: string;
  readonly apiKey?: string | undefined;
  /** `bearer`: `Authorization: Bearer KEY` (OpenAI and most); `api-key`: `api-key: KEY` (Azure OpenAI). */
  readonly authHeader?: 'bearer' | 'api-key';
  readonly timeoutMs: number;
  /** Attempts after the first one. */
  readonly retries: number;
  /** First backoff delay; it doubles per attempt, with jitter. */
  readonly retryBaseMs: number;
  /** Longest wait before a retry, backoff or Retry-After. */
  readonly retryMaxMs: number;
  /** Random source for jitter, in [0, 1). */
  readonly random?: () => number;
  /** Largest answer body read, in bytes (a larger one fails the call, not retried). Default 4 MiB. */
  readonly maxResponseBytes?: number;
  /** Largest request body (the conversation), in bytes: a larger one is not sent. Default 16 MiB. */
  readonly maxConversationBytes?: number;
}

/** ChatClientOptions.maxResponseBytes and maxConversationBytes when none are given (the flags' defaults). */
export const LLM_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
export const LLM_MAX_CONVERSATION_BYTES = 16 * 1024 * 1024;

/** Thrown out of a body read that went over its limit. */
class BodyTooLarge extends Error {}

/** Most characters of an error body quoted in an error text. */
const BODY_QUOTE = 300;
/** Most bytes of an error answer's body read (the rest is dropped unread). */
const ERROR_BODY_MAX_BYTES = 64 * 1024;

export class ChatClient {
  readonly url: string;
  /** The URL as error texts quote it: no credentials, and the query's values hidden (they may hold a key). */
  readonly shownUrl: string;
  /** Texts that must never reach an error text (task_end, events, logs): the key and the query's values. */
  private readonly secrets: string[];
  private readonly headers: Record<string, string>;
  private readonly random: () => number;

  constructor(private readonly opts: ChatClientOptions) {
    this.url = completionsUrl(opts.baseUrl);
    this.shownUrl = shownUrl(this.url);
    this.secrets = secretsOf(this.url, opts.apiKey);
    this.headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (opts.apiKey) {
      if (opts.authHeader === 'api-key') this.headers['api-key'] = opts.apiKey;
      else this.headers.authorization = `Bearer ${opts.apiKey}`;
    }
    this.random = opts.random ?? Math.random;
  }

  /** One chat completion. Rejects with an AipError (LLM_*), or with `signal.reason` once `signal` aborts. */
  async complete(req: ChatRequest, signal: AbortSignal): Promise<ChatReply> {
    const started = performance.now();
    const body = JSON.stringify(req);
    const max = this.opts.maxConversationBytes ?? LLM_MAX_CONVERSATION_BYTES;
    const bytes = Buffer.byteLength(body);
    if (bytes > max) throw aipError('LLM_CONVERSATION_TOO_LARGE', { bytes, max });
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.attempt(body, signal, attempt);
      signal.throwIfAborted();
      if ('reply' in outcome) {
        const latency_ms = Math.round(performance.now() - started);
        return { ...outcome.reply, attempts: attempt, latency_ms };
      }
      if (outcome.retryInMs === null || attempt > this.opts.retries) throw outcome.error;
      await sleep(outcome.retryInMs, signal);
    }
  }

  /** Attempt number `n` (1-based): the reply, or the error and the wait before a retry (null: do not retry). */
  private async attempt(
    body: string,
    signal: AbortSignal,
    n: number,
  ): Promise<
    { reply: Omit<ChatReply, 'attempts' | 'latency_ms'> } | { error: AipError; retryInMs: number | null }
  > {
    const timeout = AbortSignal.timeout(this.opts.timeoutMs);
    const both = AbortSignal.any([signal, timeout]);
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.url, { method: 'POST', headers: this.headers, body, signal: both });
      // An error page is only quoted (BODY_QUOTE characters), so it is read up to a small cap and cut, never refused:
      // its status still decides the retry.
      text = res.ok
        ? await readCapped(res, this.opts.maxResponseBytes ?? LLM_MAX_RESPONSE_BYTES, 'refuse')
        : await readCapped(res, ERROR_BODY_MAX_BYTES, 'cut');
    } catch (err) {
      signal.throwIfAborted();
      if (err instanceof BodyTooLarge)
        return { error: aipError('LLM_BAD_RESPONSE', { detail: err.message }), retryInMs: null };
      if (timeout.aborted)
        return { error: aipError('LLM_TIMEOUT', { ms: this.opts.timeoutMs }), retryInMs: null };
      const error = aipError('LLM_UNREACHABLE', {
        url: this.shownUrl,
        reason: this.redact(networkReason(err)),
      });
      return { error, retryInMs: this.backoff(n - 1) };
    }
    if (res.ok) {
      const reply = parseCompletion(text);
      return typeof reply === 'string'
        ? { error: aipError('LLM_BAD_RESPONSE', { detail: reply }), retryInMs: null }
        : { reply };
    }
    const error = aipError('LLM_HTTP_ERROR', { status: res.status, detail: this.redact(errorDetail(text)) });
    if (!retryable(res.status)) return { error, retryInMs: null };
    const asked = retryAfterMs(res.headers, Date.now());
    if (asked !== null && asked > this.opts.retryMaxMs)
      return {
        error: aipError('LLM_RETRY_AFTER_TOO_LONG', { ms: asked, max: this.opts.retryMaxMs }),
        retryInMs: null,
      };
    return { error, retryInMs: asked ?? this.backoff(n - 1) };
  }

  /** `text` with every secret (the key, the query's values) replaced by `***`. */
  private redact(text: string): string {
    let out = text;
    for (const s of this.secrets) out = out.split(s).join('***');
    return out;
  }

  private backoff(n: number): number {
    return backoffMs(n, this.opts.retryBaseMs, this.opts.retryMaxMs, this.random());
  }
}

/**
 * The body as text (UTF-8, a leading BOM dropped), read as it streams in. Past `max` bytes the read stops and the
 * connection is dropped; then `refuse` throws BodyTooLarge (a Content-Length over `max` is refused before anything
 * is read), and `cut` returns the first `max` bytes.
 */
async function readCapped(res: Response, max: number, over: 'refuse' | 'cut'): Promise<string> {
  const tooLarge = (): BodyTooLarge =>
    new BodyTooLarge(`the body is larger than ${max} bytes (--llm-max-response-bytes)`);
  const declared = Number(res.headers.get('content-length'));
  if (over === 'refuse' && declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  if (!res.body) return '';
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (size + value.byteLength > max) {
      await reader.cancel().catch(() => undefined);
      if (over === 'refuse') throw tooLarge();
      chunks.push(value.subarray(0, max - size));
      size = max;
      break;
    }
    size += value.byteLength;
    chunks.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(chunks, size));
}

/** The wait before retry `n` (0-based): base·2^n capped at `maxMs`, with "equal jitter" (half fixed, half random). */
export function backoffMs(n: number, baseMs: number, maxMs: number, random: number): number {
  const cap = Math.min(maxMs, baseMs * 2 ** n);
  return Math.round(cap / 2 + (random * cap) / 2);
}

/** `{baseUrl}/chat/completions`, keeping the base URL's query. Throws for a URL that does not parse. */
export function completionsUrl(baseUrl: string): string {
  const u = new URL(baseUrl);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/chat/completions`;
  return u.toString();
}

/** Shortest query value treated as a secret when redacting (shorter ones, like `v=1`, would blank out prose). */
const MIN_SECRET_CHARS = 4;

/** `url` without credentials, each query value replaced by `***`. */
export function shownUrl(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  const shown = [...u.searchParams.keys()].map((k) => `${encodeURIComponent(k)}=***`).join('&');
  u.search = shown;
  return u.toString();
}

/** The texts an error must not quote: the API key, the URL's password and its query's values (decoded and as sent). */
function secretsOf(url: string, apiKey: string | undefined): string[] {
  const u = new URL(url);
  const all = [apiKey ?? '', u.password, ...u.searchParams.values()];
  for (const raw of u.search.slice(1).split('&')) all.push(raw.slice(raw.indexOf('=') + 1));
  // Longest first, so that a secret containing another is replaced whole.
  return [...new Set(all.filter((s) => s.length >= MIN_SECRET_CHARS))].sort((a, b) => b.length - a.length);
}

export function retryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** The wait a response asks for: `retry-after-ms` (OpenAI), else `Retry-After` in seconds or as an HTTP date. */
export function retryAfterMs(headers: Headers, nowMs: number): number | null {
  const ms = headers.get('retry-after-ms');
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms));
  const ra = headers.get('retry-after');
  if (ra === null) return null;
  if (/^\d+(\.\d+)?$/.test(ra.trim())) return Math.ceil(Number(ra) * 1000);
  const at = Date.parse(ra);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

function errorDetail(text: string): string {
  let detail = text.trim();
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    const m = typeof j.error === 'string' ? j.error : (j.error?.message ?? j.message);
    if (typeof m === 'string') detail = m;
  } catch {
    // not JSON: quote the text
  }
  if (detail === '') return 'no body';
  return detail.length > BODY_QUOTE ? `${detail.slice(0, BODY_QUOTE)}…` : detail;
}

function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return err instanceof Error ? err.message : String(err);
}

/** Waits `ms`, or rejects with `signal.reason` as soon as it aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
