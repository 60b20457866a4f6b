/**
 * The HTTP router: route modules register their routes here, each declared once (method, path, auth, handler).
 * The router answers from the request head alone whatever it can (unknown route, wrong method, missing or wrong
 * API key), so a refused request's body is never read; only then is the body read and the handler run.
 *
 * Matching: every route also answers with one trailing slash (`/sessions/` is `/sessions`), and where several
 * routes match a path, literal segments win over `:params` (`/sessions/metrics` before `/sessions/:id`), whatever
 * the registration order. The API key comes as `X-API-Key` or as `Authorization: Bearer KEY`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { z } from 'zod';
import { aipError, jsonBytesShape } from '../../protocol/index.js';
import {
  isStorableText,
  jsonMayHoldUnstorable,
  unstorableJsonPath,
  UNSTORABLE_TEXT_MESSAGE,
} from '../lib/storable-text.js';
import type { HttpHandler, HttpRequest, HttpRequestHead, HttpResponse } from '../transport/http.js';
import { detail, validationAt } from './responses.js';

export interface RouteContext {
  readonly req: HttpRequest;
  /** Path parameters, percent-decoded. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The body as a stream, for a route declared `body: 'stream'` (`req.body` is then empty). */
  readonly bodyStream: Readable | null;
}

/** A response as the OpenAPI document describes it. */
export interface ResponseDoc {
  readonly description: string;
  /** The JSON body's schema, when it has a fixed shape worth stating. */
  readonly schema?: z.ZodType;
  /** A body that is not JSON (`text/event-stream`, `application/octet-stream`, `text/html`, …). */
  readonly contentType?: string;
}

/**
 * What the OpenAPI document says of a route (src/http/openapi.ts). `body` and `query` are the zod schemas the
 * route validates with, so the document and the validation have one source.
 */
export interface RouteDoc {
  readonly summary: string;
  readonly tag: string;
  readonly description?: string;
  /** The JSON request body's schema. */
  readonly body?: z.ZodType;
  /** A body that is not JSON, by media type (an upload's `multipart/form-data`). */
  readonly bodyType?: string;
  /** Query parameters, as an object schema (each key one parameter). */
  readonly query?: z.ZodObject;
  /** Answers by status; a 422 (validation) and the auth answers are added for every route that has them. */
  readonly responses: Readonly<Record<number, ResponseDoc>>;
}

export interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** `/api/sessions/:id`: a `:name` segment matches one path segment. */
  readonly path: string;
  /** Whether the API key is required. Default true. */
  readonly auth?: boolean;
  /**
   * `json`: a request body must be declared `application/json` (or `*+json`), else 415. `stream`: the handler
   * reads the body as a stream (`bodyStream`), of any size, at its own pace; it must check the content type.
   */
  readonly body?: 'json' | 'stream';
  /** The route in the OpenAPI document (every route has one; a test checks). */
  readonly doc: RouteDoc;
  handle(ctx: RouteContext): HttpResponse | Promise<HttpResponse>;
}

interface Compiled {
  readonly route: Route;
  readonly segments: readonly string[];
}

/** Limits checked on the head before anything else, and on a JSON body before its route parses it. */
export interface HeadLimits {
  /** Longest path plus query; longer gets 414. */
  readonly maxUrlBytes: number;
  /** Most header fields; more gets 431. */
  readonly maxHeaderCount: number;
  /** Most bytes of header names and values together; more gets 431. */
  readonly maxHeaderBytes: number;
  /**
   * A JSON body (a `body: 'json'` route's): deepest nesting and most objects and arrays, as `--max-depth` and
   * `--max-containers` for frames; more gets 422 before it is parsed (a deep one would overflow the stack later).
   */
  readonly maxDepth: number;
  readonly maxContainers: number;
}

export class Router implements HttpHandler {
  private readonly routes: Compiled[] = [];
  private readonly keyDigest: Buffer;

  constructor(
    apiKey: string,
    private readonly limits: HeadLimits,
  ) {
    this.keyDigest = digest(apiKey);
  }

  /** Adds a module's routes. A route declared twice is a programming error. */
  register(routes: readonly Route[]): this {
    for (const route of routes) {
      if (this.routes.some((c) => c.route.method === route.method && c.route.path === route.path)) {
        throw new Error(`route declared twice: ${route.method} ${route.path}`);
      }
      this.routes.push({ route, segments: route.path.split('/') });
    }
    return this;
  }

  /** Every registered route, in registration order (the OpenAPI document and its coverage test read them). */
  list(): readonly Route[] {
    return this.routes.map((c) => c.route);
  }

  /** The pattern of the route that answers `method path` (`/sessions/:id`), or null (metrics label by it). */
  routeOf(method: string, path: string): string | null {
    const m = this.match(method, path);
    return m === null || m === 'method' ? null : m.compiled.route.path;
  }

  head(req: HttpRequestHead): HttpResponse | null {
    const tooLarge = this.checkSizes(req);
    if (tooLarge) return tooLarge;
    const m = this.match(req.method, req.path);
    if (m === null) return detail(404, aipError('HTTP_NOT_FOUND').message);
    if (m === 'method') return detail(405, 'Method Not Allowed');
    if (m.compiled.route.auth === false) return null;
    const key = req.headers['x-api-key'] ?? bearerToken(req.headers.authorization);
    if (key === undefined) return validationAt(['header', 'X-API-Key'], 'Field required', 'missing');
    if (!timingSafeEqual(digest(key), this.keyDigest))
      return detail(401, aipError('HTTP_INVALID_API_KEY').message);
    if (m.compiled.route.body === 'json' && !isJsonBody(req.headers))
      return detail(415, aipError('HTTP_UNSUPPORTED_MEDIA_TYPE').message);
    return null;
  }

  private checkSizes(req: HttpRequestHead): HttpResponse | null {
    if (req.path.length + req.query.length + 1 > this.limits.maxUrlBytes) {
      return detail(414, aipError('HTTP_URI_TOO_LONG', { max: this.limits.maxUrlBytes }).message);
    }
    let count = 0;
    let bytes = 0;
    for (const k in req.headers) {
      count++;
      bytes += k.length + req.headers[k]!.length;
    }
    if (count > this.limits.maxHeaderCount || bytes > this.limits.maxHeaderBytes) {
      return detail(
        431,
        aipError('HTTP_HEADERS_TOO_LARGE', {
          count: this.limits.maxHeaderCount,
          bytes: this.limits.maxHeaderBytes,
        }).message,
      );
    }
    return null;
  }

  streamsBody(req: HttpRequestHead): boolean {
    const m = this.match(req.method, req.path);
    return m !== null && m !== 'method' && m.compiled.route.body === 'stream';
  }

  handle(req: HttpRequest, bodyStream?: Readable): HttpResponse | Promise<HttpResponse> {
    const early = this.head(req);
    if (early) {
      bodyStream?.destroy();
      return early;
    }
    const m = this.match(req.method, req.path) as { compiled: Compiled; params: Record<string, string> };
    const query = new URLSearchParams(req.query);
    const refused = m.compiled.route.body === 'json' ? this.jsonBodyRefused(req.body) : null;
    const text = refused ?? unstorableInput(m.params, query);
    if (text) {
      bodyStream?.destroy();
      return text;
    }
    return m.compiled.route.handle({ req, params: m.params, query, bodyStream: bodyStream ?? null });
  }

  /** A JSON body nested too deep or too wide (checked on its bytes), or holding a string no store keeps: 422. */
  private jsonBodyRefused(body: Uint8Array): HttpResponse | null {
    if (body.byteLength === 0) return null;
    const shape = jsonBytesShape(body, this.limits.maxDepth, this.limits.maxContainers);
    if (shape !== null) {
      const why =
        shape === 'deep'
          ? `nested deeper than ${this.limits.maxDepth} levels`
          : `more than ${this.limits.maxContainers} objects and arrays`;
      return validationAt(['body'], `JSON decode error: ${why}`, 'json_invalid');
    }
    if (!jsonMayHoldUnstorable(body)) return null;
    let value: unknown;
    try {
      value = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
    } catch {
      return null; // the route answers a body that does not parse
    }
    const at = unstorableJsonPath(value);
    return at ? validationAt(['body', ...at.map(String)], UNSTORABLE_TEXT_MESSAGE, 'string_invalid') : null;
  }

  private match(
    method: string,
    path: string,
  ): { compiled: Compiled; params: Record<string, string> } | 'method' | null {
    const parts = withoutTrailingSlash(path).split('/');
    let pathMatched = false;
    let best: { compiled: Compiled; params: Record<string, string> } | null = null;
    for (const compiled of this.routes) {
      const params = matchSegments(compiled.segments, parts);
      if (params === null) continue;
      if (compiled.route.method !== method) {
        pathMatched = true;
        continue;
      }
      if (best === null || moreSpecific(compiled.segments, best.compiled.segments))
        best = { compiled, params };
    }
    return best ?? (pathMatched ? 'method' : null);
  }
}

/** A path parameter or query value holding a string no store keeps (see storable-text.ts): 422 naming it. */
function unstorableInput(params: Record<string, string>, query: URLSearchParams): HttpResponse | null {
  for (const [k, v] of Object.entries(params))
    if (!isStorableText(v)) return validationAt(['path', k], UNSTORABLE_TEXT_MESSAGE, 'string_invalid');
  for (const [k, v] of query)
    if (!isStorableText(v)) return validationAt(['query', k], UNSTORABLE_TEXT_MESSAGE, 'string_invalid');
  return null;
}

/** `/a/b/` → `/a/b`; the root stays `/`. One slash only: `/a//` keeps its empty segment (and matches nothing). */
function withoutTrailingSlash(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

/** Whether pattern `a` is more specific than `b` (same length): at the first segment where one has a literal
 * and the other a parameter, the literal wins. */
function moreSpecific(a: readonly string[], b: readonly string[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const aParam = a[i]!.startsWith(':');
    const bParam = b[i]!.startsWith(':');
    if (aParam !== bParam) return !aParam;
  }
  return false;
}

/** The token of `Authorization: Bearer TOKEN`, or undefined. */
function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m ? m[1] : undefined;
}

function matchSegments(pattern: readonly string[], parts: readonly string[]): Record<string, string> | null {
  if (pattern.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const v = parts[i]!;
    if (p.startsWith(':')) {
      if (!v) return null;
      try {
        params[p.slice(1)] = decodeURIComponent(v);
      } catch {
        return null;
      }
    } else if (p !== v) return null;
  }
  return params;
}

/** A JSON content type, or no body at all (an absent or zero content-length). */
function isJsonBody(headers: Readonly<Record<string, string>>): boolean {
  const type = headers['content-type'];
  if (type === undefined)
    return (headers['content-length'] ?? '0') === '0' && headers['transfer-encoding'] === undefined;
  const mime = type.split(';')[0]!.trim().toLowerCase();
  return mime === 'application/json' || mime.endsWith('+json');
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
