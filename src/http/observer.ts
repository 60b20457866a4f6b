/**
 * Every HTTP answer gets a request id (`X-Request-Id`: the client's own when it sent a sane one, else a new one),
 * one access log line carrying that id, and an `http.request` lifecycle event (the metrics count it by route
 * pattern). It wraps the router as the transport's HttpHandler; the transport calls `finish` on every answer,
 * its own 413/503/500 included.
 */
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Logger } from '../logger.js';
import type { Router } from './router.js';
import type { EventSink } from '../state/events.js';
import type { HttpHandler, HttpRequest, HttpRequestHead, HttpResponse } from '../transport/http.js';

/** A client's request id is kept when it is 1–128 of these characters; anything else is replaced. */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export class ObservedHttp implements HttpHandler {
  private readonly started = new WeakMap<HttpRequestHead, number>();

  constructor(
    private readonly router: Router,
    private readonly events: EventSink,
    private readonly log: Logger,
  ) {}

  head(req: HttpRequestHead): HttpResponse | null {
    this.started.set(req, performance.now());
    return this.router.head(req);
  }

  streamsBody(req: HttpRequestHead): boolean {
    return this.router.streamsBody(req);
  }

  handle(req: HttpRequest, bodyStream?: Readable): HttpResponse | Promise<HttpResponse> {
    return this.router.handle(req, bodyStream);
  }

  finish(req: HttpRequestHead, res: HttpResponse): HttpResponse {
    const start = this.started.get(req);
    const ms = start === undefined ? 0 : performance.now() - start;
    const given = req.headers['x-request-id'];
    const id = given !== undefined && SANE_ID.test(given) ? given : randomUUID();
    const route = this.router.routeOf(req.method, req.path);
    this.events.emit('http.request', { method: req.method, route, status: res.status, ms });
    this.log.info(
      {
        req_id: id,
        method: req.method,
        path: req.path,
        route,
        status: res.status,
        ms: Math.round(ms * 10) / 10,
      },
      'http request',
    );
    return { ...res, headers: { ...res.headers, 'x-request-id': id } };
  }
}
