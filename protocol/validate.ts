/**
 * Schema validation at the edge: a zod failure becomes one typed `AipError` (code VALIDATION) whose text
 * names each offending field, in the layout of pydantic's message (which UFO sends on the wire).
 */
import { z } from 'zod';
import { AipError, Errors } from './errors.js';
import { ClientMessage, ServerMessage } from './messages.js';
import type { Decoded } from './codec/limits.js';

/** `Error` with V8's `stackTraceLimit`, which other engines ignore (see AipError in errors.ts). */
const V8Error = Error as ErrorConstructor & { stackTraceLimit?: number };

export function formatIssues(model: string, issues: readonly z.core.$ZodIssue[]): string {
  const n = issues.length;
  const lines = [`${n} validation error${n === 1 ? '' : 's'} for ${model}`];
  for (const issue of issues) {
    lines.push(issue.path.length ? issue.path.map(String).join('.') : '(root)');
    lines.push(`  ${issue.message}`);
  }
  return lines.join('\n');
}

export function validate<S extends z.ZodType>(schema: S, model: string, value: unknown): Decoded<z.infer<S>> {
  const r = schema.safeParse(value);
  if (r.success) return { ok: true, value: r.data };
  // Reading `r.error` builds a ZodError, and AipError is a value too: neither needs a stack trace, which was
  // most of the cost of a rejected frame.
  const limit = V8Error.stackTraceLimit;
  V8Error.stackTraceLimit = 0;
  try {
    const issues = r.error.issues;
    const first = issues[0];
    const path = first ? (first.path as (string | number)[]) : [];
    return {
      ok: false,
      error: new AipError('VALIDATION', Errors.VALIDATION.code, formatIssues(model, issues), path),
    };
  } finally {
    V8Error.stackTraceLimit = limit;
  }
}

/**
 * zod's ahead-of-time compiled parsers of the same declarations (messages.ts): a generated fast path that
 * builds the same output, falling back to the runtime parser whenever it would fail, so rejected frames get
 * exactly the runtime's issues.
 */
const CompiledClientMessage = z.compile(ClientMessage);
const CompiledServerMessage = z.compile(ServerMessage);

export const validateClientMessage = (v: unknown): Decoded<ClientMessage> =>
  validate(CompiledClientMessage, 'ClientMessage', v);
export const validateServerMessage = (v: unknown): Decoded<ServerMessage> =>
  validate(CompiledServerMessage, 'ServerMessage', v);
