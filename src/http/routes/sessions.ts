/**
 * `/sessions`: the durable session records over REST, the reference session service's API plus what it lacks
 * (delete, filters, time ranges, bulk cleanup, context merge). Every write goes through the SessionService, which
 * owns the status transition table, JSON Merge Patch and the one-event-per-write rule; this module validates,
 * maps errors to HTTP (404, 409, 422) and shapes the answers. Events are in sessions-events.ts, metrics in
 * sessions-metrics.ts.
 */
import { Detail, FilterQuery, conflict, noContentDoc, notFoundDoc, ok, pageQuery } from '../route-docs.js';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { AipError, aipError } from '../../../protocol/index.js';
import { sessionErrorStatus, type PatchInput } from '../../records/session-service.js';
import { RUNTIME_BACKENDS, SESSION_STATUSES, sessionJson } from '../../state/session-model.js';
import type { HttpResponse } from '../../transport/http.js';
import type { ApiDeps } from '../deps.js';
import { detail, json, noContent, validationAt } from '../responses.js';
import { SESSION_TYPES, sessionType } from '../../remote/index.js';
import { remoteError } from './remote-errors.js';
import { startAnswer } from './remote.js';
import { liveStatusChange, restOfPatch } from './session-status.js';
import type { Route } from '../router.js';
import { jsonObject, parseBody, parseObjectBody } from '../validation.js';
import { MAX_LIST_LIMIT, nextPageLink, readFilter, readListQuery } from './sessions-query.js';
import { QueryErrors } from '../validation.js';

/** Ids that name routes under /sessions (a session called so could not be read back with GET). */
export const RESERVED_SESSION_IDS: ReadonlySet<string> = new Set(['metrics', 'events']);

/** Sessions read per page while a bulk delete walks its filter. */
const BULK_DELETE_PAGE = 500;

const text256 = z.string().min(1).max(256);

const CreateBody = z.object({
  id: text256
    .refine((id) => !RESERVED_SESSION_IDS.has(id), {
      params: {
        type: 'value_error',
        msg: "Value error, 'metrics' and 'events' are reserved (they name routes)",
      },
    })
    .optional(),
  agent_id: text256,
  session_type: text256,
  status: z.enum(SESSION_STATUSES).optional(),
  context: jsonObject.optional(),
  checkpoint: jsonObject.nullable().optional(),
  runtime_backend: z.enum(RUNTIME_BACKENDS).optional(),
  runtime_metadata: jsonObject.optional(),
  /** A typed session's parameters (SSM's shape, see src/remote/session-types.ts); plain records take none. */
  parameters: jsonObject.optional(),
});

/** PATCH: every field optional; `null` leaves a field as it is (pydantic's Optional), except `checkpoint`, which it clears. */
const PatchBody = z.object({
  status: z.enum(SESSION_STATUSES).nullish(),
  reason: z.string().max(1000).nullish(),
  context: jsonObject.nullish(),
  checkpoint: jsonObject.nullable().optional(),
  runtime_backend: z.enum(RUNTIME_BACKENDS).nullish(),
  runtime_metadata: jsonObject.nullish(),
});

export function sessionPath(id: string): string {
  return `/sessions/${encodeURIComponent(id)}`;
}

const notFound = (): HttpResponse => detail(404, aipError('HTTP_SESSION_NOT_FOUND').message);

/** A session error from the service as its HTTP answer (404, 409, …); anything else is rethrown (500). */
export function sessionError(err: unknown): HttpResponse {
  if (err instanceof AipError) return detail(sessionErrorStatus(err), err.message);
  throw err;
}

/**
 * Deletes a session; a running one (here or on another node of a cluster) is cancelled first (its requester gets `task_end` failed with
 * DELETED_BY_API) and deleted once it has ended. False when there was no record.
 */
export async function deleteSession(deps: ApiDeps, id: string): Promise<boolean> {
  if (await deps.remote.sessions.end(id, 'cancelled', aipError('DELETED_BY_API').message))
    deps.log.info({ session_id: id }, 'remote session closed: deleted over the REST API');
  if (await deps.tasks.cancelAnywhere(id, aipError('DELETED_BY_API').message, true))
    deps.log.info({ session_id: id }, 'running session cancelled: deleted over the REST API');
  return deps.sessions.delete(id);
}

export function sessionRoutes(deps: ApiDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/sessions',
      doc: {
        summary: 'Create a session record, or start a typed session on a device',
        tag: 'sessions',
        body: CreateBody,
        responses: { 201: ok('Created (Location names it)'), 409: conflict },
      },
      body: 'json',
      handle: async ({ req }) => {
        const parsed = parseBody(CreateBody, req.body);
        if (!parsed.ok) return parsed.res;
        const input = parsed.value;
        // `task` records are kept as they always were (AIP creates running ones); the other types start here.
        const typed = sessionType(input.session_type);
        if (typed?.creatable) {
          try {
            const { record, live } = await deps.remote.sessions.create(input, typed);
            return json(201, startAnswer(deps.remote, record, live, req.headers.host), {
              location: sessionPath(record.id),
            });
          } catch (err) {
            return remoteError(err);
          }
        }
        if (input.parameters !== undefined)
          return validationAt(
            ['body', 'parameters'],
            `parameters are only for the typed session types (${SESSION_TYPES.filter((t) => t.creatable)
              .map((t) => t.name)
              .join(', ')})`,
            'extra_forbidden',
          );
        const record = deps.sessions.recordFrom(input, input.id ?? randomUUID());
        try {
          await deps.sessions.create(record, {
            agent_id: record.agent_id,
            session_type: record.session_type,
            runtime_backend: record.runtime_backend,
          });
        } catch (err) {
          return sessionError(err);
        }
        return json(201, sessionJson(record), { location: sessionPath(record.id) });
      },
    },
    {
      method: 'GET',
      path: '/sessions',
      doc: {
        summary: 'List sessions, filtered, newest first, paged',
        tag: 'sessions',
        query: FilterQuery.extend(pageQuery(MAX_LIST_LIMIT).shape),
        responses: { 200: ok('A page of sessions (Link: rel=next when there are more)') },
      },
      handle: async ({ query }) => {
        const q = readListQuery(query);
        if (!q.ok) return q.res;
        const { filter, limit, cursor } = q.value;
        const page = await deps.sessions.list(filter, { limit, cursor });
        const body = page.items.map(sessionJson);
        return page.next
          ? json(200, body, { link: nextPageLink('/sessions', query, page.next) })
          : json(200, body);
      },
    },
    {
      method: 'DELETE',
      path: '/sessions',
      doc: {
        summary: 'Delete every session the filter matches (a filter is required)',
        tag: 'sessions',
        query: FilterQuery,
        responses: { 200: ok('How many were deleted'), 400: ok('No filter given', Detail) },
      },
      handle: async ({ query }) => {
        const errors = new QueryErrors();
        const { filter, any } = readFilter(query, errors);
        const bad = errors.response();
        if (bad) return bad;
        if (!any) return detail(400, aipError('SESSION_FILTER_REQUIRED').message);
        let deleted = 0;
        let cursor: string | null = null;
        do {
          const page = await deps.sessions.list(filter, { limit: BULK_DELETE_PAGE, cursor });
          const done = await Promise.all(page.items.map((r) => deleteSession(deps, r.id)));
          deleted += done.filter(Boolean).length;
          cursor = page.next;
        } while (cursor !== null);
        deps.log.info({ filter, deleted }, 'sessions deleted in bulk over the REST API');
        return json(200, { deleted });
      },
    },
    {
      method: 'GET',
      path: '/sessions/:id',
      doc: {
        summary: 'One session',
        tag: 'sessions',
        responses: { 200: ok('The session'), 404: notFoundDoc },
      },
      handle: async ({ params }) => {
        const rec = await deps.sessions.get(params.id!);
        return rec ? json(200, sessionJson(rec)) : notFound();
      },
    },
    {
      method: 'PATCH',
      path: '/sessions/:id',
      doc: {
        summary: 'Change status, merge context (JSON Merge Patch), set the checkpoint',
        tag: 'sessions',
        body: PatchBody,
        responses: {
          200: ok('The session after the change (a running one is ended first: see the README)'),
          404: notFoundDoc,
          409: conflict,
        },
      },
      body: 'json',
      handle: async ({ req, params }) => {
        const parsed = parseBody(PatchBody, req.body);
        if (!parsed.ok) return parsed.res;
        const id = params.id!;
        const b = parsed.value;
        const input: { -readonly [K in keyof PatchInput]: PatchInput[K] } = {};
        if (b.status != null) input.status = b.status;
        if (b.reason != null) input.reason = b.reason;
        if (b.context != null) input.context = b.context;
        if (b.checkpoint !== undefined) input.checkpoint = b.checkpoint;
        if (b.runtime_backend != null) input.runtime_backend = b.runtime_backend;
        if (b.runtime_metadata != null) input.runtime_metadata = b.runtime_metadata;
        // The service loads the record to patch it; a missing one is answered here first.
        const rec = await deps.sessions.get(id);
        if (!rec) return notFound();
        try {
          if (input.status !== undefined) {
            const live = await liveStatusChange(deps, rec, input.status, input.reason);
            if (live.kind === 'refuse') return live.res;
            if (live.kind === 'ended') {
              const rest = restOfPatch(input);
              const after = rest ? await deps.sessions.patch(id, rest) : await deps.sessions.get(id);
              return after ? json(200, sessionJson(after)) : notFound();
            }
          }
          return json(200, sessionJson(await deps.sessions.patch(id, input)));
        } catch (err) {
          return sessionError(err);
        }
      },
    },
    {
      method: 'PUT',
      path: '/sessions/:id/context',
      doc: {
        summary: 'Replace the context',
        tag: 'sessions',
        bodyType: 'application/json',
        responses: { 200: ok('The session after the change'), 404: notFoundDoc, 409: conflict },
      },
      body: 'json',
      handle: async ({ req, params }) => {
        const parsed = parseObjectBody(req.body);
        if (!parsed.ok) return parsed.res;
        const id = params.id!;
        if (!(await deps.sessions.get(id))) return notFound();
        try {
          return json(200, sessionJson(await deps.sessions.replaceContext(id, parsed.value)));
        } catch (err) {
          return sessionError(err);
        }
      },
    },
    {
      method: 'DELETE',
      path: '/sessions/:id',
      doc: {
        summary: 'Delete a session (a running one is cancelled first)',
        tag: 'sessions',
        responses: { 204: noContentDoc, 404: notFoundDoc },
      },
      handle: async ({ params }) => ((await deleteSession(deps, params.id!)) ? noContent() : notFound()),
    },
  ];
}
