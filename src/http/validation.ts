/**
 * Request validation in FastAPI's shape. Bodies are checked with zod and every issue becomes one entry of
 * `{"detail": [{"type", "loc", "msg", "input", "ctx"?}]}` with pydantic v2's type names and messages (`missing`
 * "Field required", `string_type`, `dict_type`, `enum`, `json_invalid`, …), because the clients of UFO and of the
 * reference session service are FastAPI clients. Unknown keys are ignored, as pydantic does. Query parameters are
 * parsed here too (integers, ISO-8601 datetimes), with the same error shape and `loc: ["query", name]`.
 */
import { z } from 'zod';
import type { JsonObject } from '../state/session-model.js';
import type { HttpResponse } from '../transport/http.js';
import { json } from './responses.js';

/** One entry of FastAPI's 422 `detail`. */
export interface FastApiError {
  readonly type: string;
  readonly loc: readonly (string | number)[];
  readonly msg: string;
  readonly input: unknown;
  readonly ctx?: Readonly<Record<string, unknown>>;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; res: HttpResponse };

/** A 422 with these errors. */
export const unprocessable = (errors: readonly FastApiError[]): HttpResponse => json(422, { detail: errors });

export function isJsonObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * A JSON object (pydantic's dict), passed through as given: no copy, so no key is lost (zod's record drops
 * `__proto__`, which JSON may carry as a plain key).
 */
export const jsonObject = z.custom<JsonObject>(isJsonObject, {
  params: { type: 'dict_type', msg: 'Input should be a valid dictionary' },
});

/** `'a', 'b' or 'c'`, as pydantic lists expected values. */
export function expectedList(values: readonly unknown[]): string {
  const quoted = values.map((v) => (typeof v === 'string' ? `'${v}'` : String(v)));
  return quoted.length <= 1
    ? (quoted[0] ?? '')
    : `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}`;
}

const TYPE_ERRORS: Readonly<Record<string, { type: string; msg: string }>> = {
  string: { type: 'string_type', msg: 'Input should be a valid string' },
  object: { type: 'dict_type', msg: 'Input should be a valid dictionary' },
  record: { type: 'dict_type', msg: 'Input should be a valid dictionary' },
  number: { type: 'float_type', msg: 'Input should be a valid number' },
  int: { type: 'int_type', msg: 'Input should be a valid integer' },
  boolean: { type: 'bool_type', msg: 'Input should be a valid boolean' },
  array: { type: 'list_type', msg: 'Input should be a valid list' },
};

/** The value at `path` inside `root`, or undefined. */
function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

const BOUNDS = {
  greater_than: { words: 'greater than', key: 'gt' },
  greater_than_equal: { words: 'greater than or equal to', key: 'ge' },
  less_than: { words: 'less than', key: 'lt' },
  less_than_equal: { words: 'less than or equal to', key: 'le' },
} as const;

/**
 * pydantic's entry for a number out of bounds: `gt`/`lt` for an exclusive bound (zod's `.positive()` is `> 0`, so
 * 0 is told "greater than 0"), `ge`/`le` for an inclusive one.
 */
function bound(
  loc: (string | number)[],
  input: unknown,
  type: keyof typeof BOUNDS,
  limit: number | bigint,
): FastApiError {
  const { words, key } = BOUNDS[type];
  return {
    type,
    loc,
    msg: `Input should be ${words} ${String(limit)}`,
    input,
    ctx: { [key]: Number(limit) },
  };
}

/** FastAPI entries for zod issues of `input` (parsed with `reportInput`), located under `prefix`. */
export function fastApiErrors(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  prefix: readonly (string | number)[],
): FastApiError[] {
  return issues.map((issue) => {
    const path = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
    const loc = [...prefix, ...path];
    const at = valueAt(input, issue.path);
    switch (issue.code) {
      case 'invalid_type': {
        if (at === undefined && path.length > 0) {
          // pydantic reports the enclosing object as the input of a missing field
          return {
            type: 'missing',
            loc,
            msg: 'Field required',
            input: valueAt(input, issue.path.slice(0, -1)),
          };
        }
        const t = TYPE_ERRORS[issue.expected] ?? { type: `${issue.expected}_type`, msg: issue.message };
        return { type: t.type, loc, msg: t.msg, input: at };
      }
      case 'too_small':
        if (issue.origin === 'string') {
          const n = Number(issue.minimum);
          return {
            type: 'string_too_short',
            loc,
            msg: `String should have at least ${n} character${n === 1 ? '' : 's'}`,
            input: at,
            ctx: { min_length: n },
          };
        }
        return bound(
          loc,
          at,
          issue.inclusive === false ? 'greater_than' : 'greater_than_equal',
          issue.minimum,
        );
      case 'too_big':
        if (issue.origin === 'string') {
          const n = Number(issue.maximum);
          return {
            type: 'string_too_long',
            loc,
            msg: `String should have at most ${n} character${n === 1 ? '' : 's'}`,
            input: at,
            ctx: { max_length: n },
          };
        }
        return bound(loc, at, issue.inclusive === false ? 'less_than' : 'less_than_equal', issue.maximum);
      case 'invalid_value': {
        const expected = expectedList(issue.values);
        return { type: 'enum', loc, msg: `Input should be ${expected}`, input: at, ctx: { expected } };
      }
      case 'custom': {
        const p = (issue.params ?? {}) as { type?: string; msg?: string };
        return {
          type: p.type ?? 'value_error',
          loc,
          msg: p.msg ?? `Value error, ${issue.message}`,
          input: at,
        };
      }
      default:
        return { type: 'value_error', loc, msg: `Value error, ${issue.message}`, input: at };
    }
  });
}

/** The body as JSON: an empty body is `missing`, bad bytes or bad JSON `json_invalid` (FastAPI's answers). */
export function parseJson(body: Uint8Array): Parsed<unknown> {
  if (body.byteLength === 0)
    return {
      ok: false,
      res: unprocessable([{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }]),
    };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return { ok: false, res: jsonInvalid(0, 'invalid UTF-8') };
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    const message = (err as Error).message;
    const pos = /position (\d+)/.exec(message);
    const at = pos ? Number(pos[1]) : /end of JSON input/.test(message) ? text.length : 0;
    return { ok: false, res: jsonInvalid(at, message) };
  }
}

function jsonInvalid(pos: number, error: string): HttpResponse {
  return unprocessable([
    { type: 'json_invalid', loc: ['body', pos], msg: 'JSON decode error', input: {}, ctx: { error } },
  ]);
}

/**
 * A JSON body checked against an object schema. A body that is not an object is pydantic's
 * `model_attributes_type`; each field error is located at `["body", field, …]`.
 */
export function parseBody<T>(schema: z.ZodType<T>, body: Uint8Array): Parsed<T> {
  const parsed = parseJson(body);
  if (!parsed.ok) return parsed;
  const value = parsed.value;
  if (!isJsonObject(value)) {
    return {
      ok: false,
      res: unprocessable([
        {
          type: 'model_attributes_type',
          loc: ['body'],
          msg: 'Input should be a valid dictionary or object to extract fields from',
          input: value,
        },
      ]),
    };
  }
  const r = schema.safeParse(value, { reportInput: true });
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, res: unprocessable(fastApiErrors(r.error.issues, value, ['body'])) };
}

/** A body that is itself a JSON object (`dict_type` at `["body"]` otherwise). */
export function parseObjectBody(body: Uint8Array): Parsed<JsonObject> {
  const parsed = parseJson(body);
  if (!parsed.ok) return parsed;
  if (isJsonObject(parsed.value)) return { ok: true, value: parsed.value };
  return {
    ok: false,
    res: unprocessable([
      { type: 'dict_type', loc: ['body'], msg: 'Input should be a valid dictionary', input: parsed.value },
    ]),
  };
}

/** Collects query errors so that one 422 lists them all, as FastAPI does. */
export class QueryErrors {
  readonly errors: FastApiError[] = [];

  add(e: FastApiError): void {
    this.errors.push(e);
  }

  /** An integer parameter in [min, max], or `fallback` when absent. */
  int(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
    const raw = query.get(name);
    if (raw === null) return fallback;
    const loc = ['query', name];
    if (!/^\s*[+-]?\d+\s*$/.test(raw)) {
      this.add({
        type: 'int_parsing',
        loc,
        msg: 'Input should be a valid integer, unable to parse string as an integer',
        input: raw,
      });
      return fallback;
    }
    const n = Number(raw);
    if (n < min || n > max) {
      this.add(
        n < min ? bound(loc, raw, 'greater_than_equal', min) : bound(loc, raw, 'less_than_equal', max),
      );
      return fallback;
    }
    return n;
  }

  /**
   * An ISO-8601 datetime (or date) parameter as the stores' time format (UTC, milliseconds), or undefined when
   * absent. `bound` says how a time finer than a millisecond rounds so that the exclusive comparison the stores
   * make stays exact: `after` rounds down, `before` up.
   */
  datetime(query: URLSearchParams, name: string, bound: 'after' | 'before'): string | undefined {
    const raw = query.get(name);
    if (raw === null) return undefined;
    const t = parseIsoTime(raw, bound);
    if (t === null) {
      this.add({
        type: 'datetime_from_date_parsing',
        loc: ['query', name],
        msg: 'Input should be a valid datetime or date, in ISO-8601 (for example 2025-01-31T12:00:00Z)',
        input: raw,
      });
      return undefined;
    }
    return t;
  }

  /** Every value of a repeatable parameter that must be one of `values`; undefined when absent. */
  enumList<T extends string>(query: URLSearchParams, name: string, values: readonly T[]): T[] | undefined {
    const raw = query.getAll(name);
    if (raw.length === 0) return undefined;
    const out: T[] = [];
    raw.forEach((v, i) => {
      if ((values as readonly string[]).includes(v)) out.push(v as T);
      else {
        const expected = expectedList(values);
        this.add({
          type: 'enum',
          loc: ['query', name, i],
          msg: `Input should be ${expected}`,
          input: v,
          ctx: { expected },
        });
      }
    });
    return out;
  }

  /** A string parameter of 1 to `max` characters, or undefined when absent. */
  string(query: URLSearchParams, name: string, max = 256): string | undefined {
    const raw = query.get(name);
    if (raw === null) return undefined;
    if (raw.length < 1 || raw.length > max) {
      this.add(
        raw.length < 1
          ? {
              type: 'string_too_short',
              loc: ['query', name],
              msg: 'String should have at least 1 character',
              input: raw,
              ctx: { min_length: 1 },
            }
          : {
              type: 'string_too_long',
              loc: ['query', name],
              msg: `String should have at most ${max} characters`,
              input: raw,
              ctx: { max_length: max },
            },
      );
      return undefined;
    }
    return raw;
  }

  /** The 422 listing every error, or null when there is none. */
  response(): HttpResponse | null {
    return this.errors.length > 0 ? unprocessable(this.errors) : null;
  }
}

/**
 * `YYYY-MM-DD`, or a date and time (`T`, `t` or a space between) with optional seconds and fraction, and `Z` or
 * an offset; no offset means UTC. A `+` of the offset that a query string turned into a space is read as `+`.
 * Digits alone are Unix time (seconds, or milliseconds past 2e10, as pydantic reads them).
 */
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*([Zz]|[+\- ]\d{2}(?::?\d{2})?)?)?$/;

/** An ISO-8601 time as `YYYY-MM-DDTHH:MM:SS.mmmZ`, rounded to the millisecond towards `bound`; null if invalid. */
export function parseIsoTime(raw: string, bound: 'after' | 'before'): string | null {
  const text = raw.trim();
  if (/^\d+(\.\d+)?$/.test(text)) {
    const n = Number(text);
    const ms = n > 2e10 ? n : n * 1000;
    const rounded = bound === 'after' ? Math.floor(ms) : Math.ceil(ms);
    const d = new Date(rounded);
    return Number.isNaN(d.getTime()) || d.getUTCFullYear() > 9999 ? null : d.toISOString();
  }
  const m = ISO_TIME.exec(text);
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', tz = 'Z'] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return null;
  let offsetMin = 0;
  if (tz !== 'Z' && tz !== 'z') {
    const sign = tz[0] === '-' ? -1 : 1;
    const digits = tz.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = Number(digits.slice(2) || '0');
    if (oh > 23 || om > 59) return null;
    offsetMin = sign * (oh * 60 + om);
  }
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // years 0–99 as written (Date.UTC would make them 19xx)
  if (date.getUTCDate() !== day || date.getUTCMonth() !== month - 1) return null; // 2025-02-30
  const ms = Number((frac + '000').slice(0, 3));
  const finer = /[1-9]/.test(frac.slice(3));
  date.setUTCHours(hour, minute, second, ms);
  const out = new Date(date.getTime() + (finer && bound === 'before' ? 1 : 0) - offsetMin * 60_000);
  if (Number.isNaN(out.getTime()) || out.getUTCFullYear() < 0 || out.getUTCFullYear() > 9999) return null;
  return out.toISOString();
}
