/**
 * The query of the session list, of bulk delete and of aggregate metrics: the same filters everywhere
 * (`agent_id`, repeatable `status`, `session_type`, and the four exclusive time bounds), then paging.
 */
import { aipError } from '../../../protocol/index.js';
import { SESSION_STATUSES } from '../../state/session-model.js';
import { parseCursor, type SessionFilter } from '../../state/session-store.js';
import type { HttpResponse } from '../../transport/http.js';
import { linkNext } from '../responses.js';
import { QueryErrors } from '../validation.js';

/** Page size of GET /sessions when `limit` is absent, and its largest value. */
export const DEFAULT_LIST_LIMIT = 50;
export const MAX_LIST_LIMIT = 1000;

export interface ParsedFilter {
  readonly filter: SessionFilter;
  /** Whether any filter was given (bulk delete needs one). */
  readonly any: boolean;
}

/** The filters of a session query, collecting errors into `errors`. */
export function readFilter(query: URLSearchParams, errors: QueryErrors): ParsedFilter {
  const filter: { -readonly [K in keyof SessionFilter]: SessionFilter[K] } = {};
  const agentId = errors.string(query, 'agent_id');
  if (agentId !== undefined) filter.agent_id = agentId;
  const status = errors.enumList(query, 'status', SESSION_STATUSES);
  if (status !== undefined) filter.status = status;
  const sessionType = errors.string(query, 'session_type');
  if (sessionType !== undefined) filter.session_type = sessionType;
  for (const [name, bound] of [
    ['created_after', 'after'],
    ['created_before', 'before'],
    ['updated_after', 'after'],
    ['updated_before', 'before'],
  ] as const) {
    const t = errors.datetime(query, name, bound);
    if (t !== undefined) filter[name] = t;
  }
  const given = [
    'agent_id',
    'status',
    'session_type',
    'created_after',
    'created_before',
    'updated_after',
    'updated_before',
  ];
  return { filter, any: given.some((k) => query.has(k)) };
}

export interface ParsedList extends ParsedFilter {
  readonly limit: number;
  readonly cursor: string | null;
}

/** The whole query of GET /sessions, or the 422 that lists every problem with it. */
export function readListQuery(
  query: URLSearchParams,
): { ok: true; value: ParsedList } | { ok: false; res: HttpResponse } {
  const errors = new QueryErrors();
  const f = readFilter(query, errors);
  const limit = errors.int(query, 'limit', DEFAULT_LIST_LIMIT, 1, MAX_LIST_LIMIT);
  const cursor = query.get('cursor');
  if (cursor !== null && parseCursor(cursor) === null) {
    errors.add({
      type: 'value_error',
      loc: ['query', 'cursor'],
      msg: aipError('HTTP_BAD_CURSOR').message,
      input: cursor,
    });
  }
  const res = errors.response();
  if (res) return { ok: false, res };
  return { ok: true, value: { ...f, limit, cursor } };
}

/** The `Link` header of the next page: the same query with the cursor replaced. */
export function nextPageLink(path: string, query: URLSearchParams, cursor: string): string {
  const next = new URLSearchParams();
  for (const [k, v] of query) if (k !== 'cursor') next.append(k, v);
  next.append('cursor', cursor);
  return linkNext(`${path}?${next.toString()}`);
}
