/**
 * The HTTP router: route modules register their routes here, each declared once (method, path, auth, handler).
 * The router answers from the request head alone whatever it can (unknown route, wrong method, missing or wrong
 * API key), so a refused request's body is never read; only then is the body read and the handler run.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { aipError } from '../../protocol/index.js';
import type { HttpHandler, HttpRequest, HttpRequestHead, HttpResponse } from '../transport/http.js';
import { detail, validationAt } from './responses.js';

export interface RouteContext {
  readonly req: HttpRequest;
  /** Path parameters, percent-decoded. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
}

export interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** `/api/sessions/:id`: a `:name` segment matches one path segment. */
  readonly path: string;
  /** Whether the API key is required. Default true. */
  readonly auth?: boolean;
  handle(ctx: RouteContext): HttpResponse | Promise<HttpResponse>;
}

interface Compiled {
  readonly route: Route;
  readonly segments: readonly string[];
}

export class Router implements HttpHandler {
  private readonly routes: Compiled[] = [];
  private readonly keyDigest: Buffer;

  constructor(apiKey: string) {
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

  head(req: HttpRequestHead): HttpResponse | null {
    const m = this.match(req.method, req.path);
    if (m === null) return detail(404, aipError('HTTP_NOT_FOUND').message);
    if (m === 'method') return detail(405, 'Method Not Allowed');
    if (m.compiled.route.auth === false) return null;
    const key = req.headers['x-api-key'];
    if (key === undefined) return validationAt(['header', 'X-API-Key'], 'Field required', 'missing');
    if (!timingSafeEqual(digest(key), this.keyDigest)) return detail(401, aipError('HTTP_INVALID_API_KEY').message);
    return null;
  }

  handle(req: HttpRequest): HttpResponse | Promise<HttpResponse> {
    const early = this.head(req);
    if (early) return early;
    const m = this.match(req.method, req.path) as { compiled: Compiled; params: Record<string, string> };
    return m.compiled.route.handle({ req, params: m.params, query: new URLSearchParams(req.query) });
  }

  private match(method: string, path: string): { compiled: Compiled; params: Record<string, string> } | 'method' | null {
    const parts = path.split('/');
    let pathMatched = false;
    for (const compiled of this.routes) {
      const params = matchSegments(compiled.segments, parts);
      if (params === null) continue;
      if (compiled.route.method === method) return { compiled, params };
      pathMatched = true;
    }
    return pathMatched ? 'method' : null;
  }
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

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
