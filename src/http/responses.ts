/** Response shapes shared by every route module: JSON bodies, `{"detail": …}` errors, FastAPI's 422. */
import type { HttpResponse } from '../transport/http.js';

export const json = (status: number, body: unknown, headers?: Record<string, string>): HttpResponse =>
  headers ? { status, body, headers } : { status, body };

export const detail = (status: number, text: string): HttpResponse => json(status, { detail: text });

/** FastAPI-shaped 422 body, as UFO's clients would see it. */
export function validationAt(loc: string[], msg: string, type: string): HttpResponse {
  return json(422, { detail: [{ type, loc, msg, input: null }] });
}

export function validation(field: string, msg: string, type: string): HttpResponse {
  return validationAt(['body', field], msg, type);
}

/** The body as JSON, or a 422 response. An empty body is `null`. */
export function parseJsonBody(
  body: Uint8Array,
): { ok: true; value: unknown } | { ok: false; res: HttpResponse } {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    return { ok: true, value: JSON.parse(text || 'null') as unknown };
  } catch {
    return { ok: false, res: validation('body', 'JSON decode error', 'json_invalid') };
  }
}

/** 204 with an empty body. */
export const noContent = (): HttpResponse => ({
  status: 204,
  body: '',
  headers: { 'content-type': 'text/plain' },
});

/** A `Link: <url>; rel="next"` header value (RFC 8288). */
export const linkNext = (url: string): string => `<${url}>; rel="next"`;
