/**
 * Shapes the OpenAPI document states for routes: the query parameters (as zod objects: the routes read them with
 * QueryErrors, whose limits these name from the same constants) and the answers many routes share.
 */
import { z } from 'zod';
import { SESSION_STATUSES } from '../state/session-model.js';
import type { ResponseDoc } from './router.js';

/** The session filter of GET/DELETE /sessions and GET /sessions/metrics (sessions-query.ts reads it). */
export const FilterQuery = z.object({
  agent_id: z.string().min(1).max(256).optional(),
  status: z.array(z.enum(SESSION_STATUSES)).optional().describe('repeatable: any of these statuses'),
  session_type: z.string().min(1).max(256).optional(),
  created_after: z.string().optional().describe('ISO-8601 datetime or date, exclusive'),
  created_before: z.string().optional().describe('ISO-8601 datetime or date, exclusive'),
  updated_after: z.string().optional().describe('ISO-8601 datetime or date, exclusive'),
  updated_before: z.string().optional().describe('ISO-8601 datetime or date, exclusive'),
});

export const pageQuery = (max: number): z.ZodObject =>
  z.object({
    limit: z.number().int().min(1).max(max).optional(),
    cursor: z.string().optional().describe('from the previous page’s Link: rel="next"'),
  });

export const eventsQuery = (max: number): z.ZodObject =>
  z.object({
    after: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('events with a greater id (or the Last-Event-ID header)'),
    limit: z.number().int().min(1).max(max).optional(),
  });

export const Detail = z.object({ detail: z.string() });

export const ok = (description: string, schema?: z.ZodType): ResponseDoc =>
  schema ? { description, schema } : { description };
export const notFoundDoc: ResponseDoc = { description: 'No such session (or client)', schema: Detail };
export const conflict: ResponseDoc = {
  description: 'The session is not in a state that allows it',
  schema: Detail,
};
export const noContentDoc: ResponseDoc = { description: 'Done; no body' };
