/**
 * `GET /sessions/{id}/metrics` (one session: duration, time in each status, counts from its event log) and
 * `GET /sessions/metrics` (the list's filters; counts by status and duration percentiles over the matching
 * sessions, scanning at most METRICS_SCAN_LIMIT of them, newest first, and saying `truncated` when it stopped).
 */
import { FilterQuery, notFoundDoc, ok } from '../route-docs.js';
import { aipError } from '../../../protocol/index.js';
import { EventCounts, MetricsAggregate, sessionMetrics } from '../../records/session-metrics.js';
import type { ApiDeps } from '../deps.js';
import { detail, json } from '../responses.js';
import type { Route } from '../router.js';
import { QueryErrors } from '../validation.js';
import { readFilter } from './sessions-query.js';

/** Most sessions one aggregate scans. */
export const METRICS_SCAN_LIMIT = 100_000;
/** Sessions, or events, read per store call. */
const METRICS_PAGE = 1000;

export function sessionMetricsRoutes(deps: ApiDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/sessions/metrics',
      doc: {
        summary: 'Counts by status and duration percentiles over the filtered sessions',
        tag: 'sessions',
        query: FilterQuery,
        responses: { 200: ok('The aggregate') },
      },
      handle: async ({ query }) => {
        const errors = new QueryErrors();
        const { filter } = readFilter(query, errors);
        const bad = errors.response();
        if (bad) return bad;
        const agg = new MetricsAggregate(Date.now());
        let cursor: string | null = null;
        let truncated = false;
        do {
          const limit = Math.min(METRICS_PAGE, METRICS_SCAN_LIMIT - agg.count);
          const page = await deps.sessions.list(filter, { limit, cursor });
          for (const r of page.items) agg.add(r);
          cursor = page.next;
          if (cursor !== null && agg.count >= METRICS_SCAN_LIMIT) {
            truncated = true;
            break;
          }
        } while (cursor !== null);
        return json(200, agg.result(truncated));
      },
    },
    {
      method: 'GET',
      path: '/sessions/:id/metrics',
      doc: {
        summary: 'One session’s durations and counts',
        tag: 'sessions',
        responses: { 200: ok('The metrics'), 404: notFoundDoc },
      },
      handle: async ({ params }) => {
        const id = params.id!;
        const rec = await deps.sessions.get(id);
        if (!rec) return detail(404, aipError('HTTP_SESSION_NOT_FOUND').message);
        const counts = new EventCounts();
        for await (const page of deps.sessions.eventPages(id, METRICS_PAGE))
          for (const e of page) counts.add(e);
        return json(200, sessionMetrics(rec, counts, Date.now()));
      },
    },
  ];
}
