/**
 * The dashboard's calls to aipd. The API key lives in sessionStorage (this tab only, gone when it closes) and goes
 * out as the X-API-Key header; it is never put in a URL. Server-sent events are read with fetch (EventSource
 * cannot send a header).
 */
const KEY = 'aipd.apiKey';

export const apiKey = (): string | null => sessionStorage.getItem(KEY);
export const setApiKey = (k: string): void => sessionStorage.setItem(KEY, k);
export const forgetApiKey = (): void => sessionStorage.removeItem(KEY);

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  return { 'x-api-key': apiKey() ?? '', ...extra };
}

/** A call answered with JSON (or nothing); a 4xx/5xx throws ApiError with the `detail`. */
export async function call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(path, {
    method,
    headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  const data: unknown = text ? JSON.parse(text) : null;
  if (!r.ok) {
    const d = (data as { detail?: unknown } | null)?.detail;
    throw new ApiError(r.status, typeof d === 'string' ? d : `${r.status} ${JSON.stringify(d ?? text)}`);
  }
  return data as T;
}

/** A plain-text answer (the Prometheus metrics). */
export async function text(path: string): Promise<string> {
  const r = await fetch(path, { headers: headers() });
  if (!r.ok) throw new ApiError(r.status, await r.text());
  return r.text();
}

/** A multipart upload of `files`. */
export async function upload(path: string, files: readonly File[]): Promise<unknown> {
  const form = new FormData();
  for (const f of files) form.append('file', f, f.name);
  const r = await fetch(path, { method: 'POST', headers: headers(), body: form });
  const data = (await r.json()) as unknown;
  if (!r.ok) throw new ApiError(r.status, JSON.stringify(data));
  return data;
}

/** Downloads `path` and hands the browser the bytes as a file named `name`. */
export async function download(path: string, name: string): Promise<void> {
  const r = await fetch(path, { headers: headers() });
  if (!r.ok) throw new ApiError(r.status, await r.text());
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export interface SseEvent {
  readonly id: string | null;
  readonly event: string;
  readonly data: string;
}

/**
 * Follows a server-sent event stream until `signal` aborts, reconnecting (with Last-Event-ID) when it breaks.
 */
export async function follow(
  path: string,
  onEvent: (e: SseEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  let last: string | null = null;
  while (!signal.aborted) {
    try {
      const r = await fetch(path, {
        headers: headers({ accept: 'text/event-stream', ...(last ? { 'last-event-id': last } : {}) }),
        signal,
      });
      if (!r.ok || !r.body) throw new ApiError(r.status, 'event stream refused');
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const e = parseBlock(block);
          if (e) {
            if (e.id !== null) last = e.id;
            onEvent(e);
          }
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status < 500) return;
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
}

function parseBlock(block: string): SseEvent | null {
  let id: string | null = null;
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return data.length === 0 ? null : { id, event, data: data.join('\n') };
}

/** "3 s", "4 min", "2 h" since an ISO time. */
export function age(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}
