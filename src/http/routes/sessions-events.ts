/**
 * Session event logs: `GET /sessions/{id}/events` (one session's log, oldest first, paged with `?after=ID`) and
 * `GET /sessions/events` (every session's). With `Accept: text/event-stream` either is a live SSE stream that
 * replays the log after `Last-Event-ID` (or `?after`; everything without either) and then streams live, with no
 * gap and no repeat (sessions-sse.ts).
 */
import { eventsQuery, notFoundDoc } from '../route-docs.js';
import { aipError } from '../../../protocol/index.js';
import type { EventPage } from '../../state/session-store.js';
import type { HttpRequestHead, HttpResponse } from '../../transport/http.js';
import type { ApiDeps } from '../deps.js';
import { detail, json, linkNext } from '../responses.js';
import type { Route } from '../router.js';
import { QueryErrors } from '../validation.js';
import { SseStream, sseResponse, sseSettings, type SseOptions, type SseSource } from './sessions-sse.js';

/** Events per page of the JSON log when `limit` is absent, and its largest value. */
export const DEFAULT_EVENTS_LIMIT = 100;
export const MAX_EVENTS_LIMIT = 1000;

function wantsSse(req: HttpRequestHead): boolean {
  return (req.headers.accept ?? '').toLowerCase().includes('text/event-stream');
}

/** The id to resume after: `Last-Event-ID`, else `?after`, else 0; or the 422 for a bad one. */
function resumePoint(req: HttpRequestHead, query: URLSearchParams, errors: QueryErrors): number {
  const header = req.headers['last-event-id'];
  if (header !== undefined && header.trim() !== '') {
    if (/^\s*\d+\s*$/.test(header) && Number.isSafeInteger(Number(header))) return Number(header);
    errors.add({
      type: 'int_parsing',
      loc: ['header', 'Last-Event-ID'],
      msg: 'Input should be a valid integer, unable to parse string as an integer',
      input: header,
    });
    return 0;
  }
  return errors.int(query, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
}

/** The JSON page, with a `Link` to the next when it is full or was cut at the size budget. */
function eventPage(path: string, query: URLSearchParams, page: EventPage, limit: number): HttpResponse {
  const events = page.events;
  const body = events.map((e) => ({
    id: e.id,
    session_id: e.session_id,
    type: e.type,
    at: e.at,
    data: e.data,
  }));
  if ((events.length < limit && !page.cut) || events.length === 0) return json(200, body);
  const next = new URLSearchParams();
  for (const [k, v] of query) if (k !== 'after') next.append(k, v);
  next.append('after', String(events[events.length - 1]!.id));
  return json(200, body, { link: linkNext(`${path}?${next.toString()}`) });
}

/** `sse`: the stream knobs, read when a stream opens (the shared `sseSettings` unless given). */
export function sessionEventRoutes(deps: ApiDeps, sse: SseOptions = sseSettings): Route[] {
  const log = deps.log.child({ component: 'sse' });
  const feed = deps.sessions.feed;
  return [
    {
      method: 'GET',
      path: '/sessions/events',
      doc: {
        summary: 'Every session’s events, as JSON pages or live over SSE (Accept: text/event-stream)',
        tag: 'events',
        query: eventsQuery(MAX_EVENTS_LIMIT),
        responses: {
          200: { description: 'A page of events, or an SSE stream', contentType: 'text/event-stream' },
        },
      },
      handle: async ({ req, query }) => {
        const errors = new QueryErrors();
        const after = resumePoint(req, query, errors);
        const limit = errors.int(query, 'limit', DEFAULT_EVENTS_LIMIT, 1, MAX_EVENTS_LIMIT);
        const bad = errors.response();
        if (bad) return bad;
        if (wantsSse(req)) {
          const source: SseSource = {
            subscribe: (l) => feed.subscribe(l),
            page: (a, n) => deps.sessions.eventPage(null, a, n),
            matches: () => true,
          };
          return sseResponse(new SseStream(source, after, { ...sse }, log));
        }
        return eventPage('/sessions/events', query, await deps.sessions.eventPage(null, after, limit), limit);
      },
    },
    {
      method: 'GET',
      path: '/sessions/:id/events',
      doc: {
        summary: 'One session’s events, as JSON pages or live over SSE (Accept: text/event-stream)',
        tag: 'events',
        query: eventsQuery(MAX_EVENTS_LIMIT),
        responses: {
          200: { description: 'A page of events, or an SSE stream', contentType: 'text/event-stream' },
          404: notFoundDoc,
        },
      },
      handle: async ({ req, query, params }) => {
        const id = params.id!;
        const errors = new QueryErrors();
        const after = resumePoint(req, query, errors);
        const limit = errors.int(query, 'limit', DEFAULT_EVENTS_LIMIT, 1, MAX_EVENTS_LIMIT);
        const bad = errors.response();
        if (bad) return bad;
        const live = wantsSse(req);
        const page = await deps.sessions.eventPage(id, live ? 0 : after, live ? 1 : limit);
        // Unknown: no record and nothing ever logged (a deleted session keeps its log, ending in session.deleted).
        if (page.events.length === 0 && !(await deps.sessions.get(id))) {
          const any = live || after === 0 ? [] : (await deps.sessions.eventPage(id, 0, 1)).events;
          if (any.length === 0) return detail(404, aipError('HTTP_SESSION_NOT_FOUND').message);
        }
        if (live) {
          const source: SseSource = {
            subscribe: (l) => feed.subscribe(l),
            page: (a, n) => deps.sessions.eventPage(id, a, n),
            matches: (e) => e.session_id === id,
          };
          return sseResponse(new SseStream(source, after, { ...sse }, log));
        }
        return eventPage(`/sessions/${encodeURIComponent(id)}/events`, query, page, limit);
      },
    },
  ];
}
