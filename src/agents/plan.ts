/**
 * UFO's plan format (ufo-aip.md §9.5), extended so a step can carry the commands to run:
 *
 *   {"task": "...", "object": "report.docx", "close": false,
 *    "steps": ["a plain-language step", {"actions": [Command, ...], "agent_name"?, "process_name"?, "root_name"?}]}
 *
 * Plain-language steps parse fine (UFO's own plans are all plain language); the plan agent refuses to run them.
 * `object` is lower-cased when read, as UFO does.
 */
import { readFile, readdir } from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import { z } from 'zod';
import { Command, aipErrorAt } from '../../protocol/index.js';
import type { AipError } from '../../protocol/index.js';

const optName = z.string().nullable().optional();

/** A step with commands. `agent_name`/`process_name`/`root_name` override the session's policy for this step. */
export const ActionStep = z.object({
  actions: z.array(Command),
  agent_name: optName,
  process_name: optName,
  root_name: optName,
});
export type ActionStep = z.infer<typeof ActionStep>;

export const PlanStep = z.union([z.string(), ActionStep]);
export type PlanStep = z.infer<typeof PlanStep>;

export const Plan = z.object({
  task: z.string().nullable().optional(),
  object: z
    .string()
    .nullable()
    .optional()
    .transform((o) => (typeof o === 'string' ? o.toLowerCase() : null)),
  steps: z.array(PlanStep),
  close: z.boolean().nullable().optional(),
});
export type Plan = z.infer<typeof Plan>;

/** `steps[1].actions[0].tool_type` */
function fieldName(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out || '(root)';
}

/** Validates a parsed value as a plan; a bad plan becomes INVALID_PLAN naming the first offending field. */
/** zod's compiled parser of the same schema (falls back to the runtime parser, and its issues, on failure). */
const CompiledPlan = z.compile(Plan);

export function parsePlan(value: unknown): { ok: true; plan: Plan } | { ok: false; error: AipError } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: aipErrorAt('INVALID_PLAN', [], { detail: 'a plan must be a JSON object' }) };
  }
  const r = CompiledPlan.safeParse(value);
  if (r.success) return { ok: true, plan: r.data };
  // A step that is neither a string nor an action step: report the deepest issue of the object branch.
  const issue = deepestIssue(r.error.issues);
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  return {
    ok: false,
    error: aipErrorAt('INVALID_PLAN', path, { detail: `${fieldName(path)}: ${issue.message}` }),
  };
}

function deepestIssue(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue {
  let best = issues[0]!;
  for (const issue of issues) {
    if (issue.code === 'invalid_union') {
      for (const branch of issue.errors) {
        if (branch.length === 0) continue;
        const inner = deepestIssue(branch.map((b) => ({ ...b, path: [...issue.path, ...b.path] })));
        if (inner.path.length > best.path.length) best = inner;
      }
    } else if (issue.path.length > best.path.length) {
      best = issue;
    }
  }
  return best;
}

/** Parses plan text (a plan file, or an inline plan in a task's `request`). */
export function parsePlanText(text: string): { ok: true; plan: Plan } | { ok: false; error: AipError } {
  const parsed = parseJson(text);
  if (!parsed.ok) {
    const detail = `not valid JSON (${parsed.message})`;
    return { ok: false, error: aipErrorAt('INVALID_PLAN', [], { detail }) };
  }
  return parsePlan(parsed.value);
}

function parseObject(text: string): Record<string, unknown> | null {
  const t = text.trimStart();
  if (!t.startsWith('{')) return null;
  const parsed = parseJson(text);
  if (!parsed.ok) return null;
  const v = parsed.value;
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/**
 * JSON.parse with a one-entry memo: starting a task looks at the same request text three times (agent
 * selection, the session's plan object, the plan agent), and a long plan is costly to parse. Callers only read
 * the value; it is never mutated.
 */
let memo: { text: string; result: { ok: true; value: unknown } | { ok: false; message: string } } | null =
  null;
function parseJson(text: string): { ok: true; value: unknown } | { ok: false; message: string } {
  if (memo?.text === text) return memo.result;
  let result: { ok: true; value: unknown } | { ok: false; message: string };
  try {
    result = { ok: true, value: JSON.parse(text) as unknown };
  } catch (e) {
    result = { ok: false, message: e instanceof Error ? e.message : String(e) };
  }
  memo = { text, result };
  return result;
}

/**
 * Whether a task `request` is meant as an inline plan: JSON object text with a `steps` key.
 * A `steps` that is not an array still counts, so the plan agent reports INVALID_PLAN naming `steps`
 * instead of the request being handed to a natural-language agent.
 */
export function isPlanRequest(request: string): boolean {
  const o = parseObject(request);
  return o !== null && 'steps' in o;
}

/** The plan's `object` (lower-cased), if `request` is plan text that has one; else null. */
export function planObjectOf(request: string): string | null {
  const o = parseObject(request);
  return o !== null && typeof o['object'] === 'string' ? o['object'].toLowerCase() : null;
}

/** Reads and parses one plan file. */
export async function loadPlanFile(
  file: string,
): Promise<{ ok: true; plan: Plan } | { ok: false; error: AipError }> {
  return parsePlanText(await readFile(file, 'utf8'));
}

export interface PlanFileEntry {
  /** The file name without `.json`. */
  readonly stem: string;
  /** Absolute path, always directly inside the folder. */
  readonly path: string;
}

/**
 * The `*.json` plan files directly inside `folder`, sorted by name. Only regular files count: symlinks and
 * sub-folders are ignored, so every path stays inside the folder.
 */
export async function listPlanFiles(folder: string): Promise<PlanFileEntry[]> {
  const root = resolve(folder);
  const entries = await readdir(root, { withFileTypes: true });
  const out: PlanFileEntry[] = [];
  for (const e of entries) {
    if (!e.isFile() || !e.name.toLowerCase().endsWith('.json') || e.name.length <= 5) continue;
    const path = join(root, e.name);
    if (!path.startsWith(root + sep) || basename(path) !== e.name) continue;
    out.push({ stem: e.name.slice(0, -5), path });
  }
  return out.sort((a, b) => (a.stem < b.stem ? -1 : a.stem > b.stem ? 1 : 0));
}
