/**
 * The device's tools as the model sees them, and the model's tool calls as the device sees them:
 * - `list_tools` batches (one command per tool type, ufo-aip.md §7.3) and the parse of their MCPToolInfo lists;
 * - function definitions from each tool's `input_schema`, plus the `finish` tool aipd adds;
 * - a check of a call's arguments against the schema (JSON object, required keys, basic types);
 * - tool messages from Results, with data-URL images left out and the text truncated to a byte budget.
 */
import type { CommandInput, Result, ToolType } from '../../../protocol/index.js';
import { truncateUtf8 } from '../../lib/truncate.js';
import { jsonShape } from '../../../protocol/index.js';
import { COMPLETION_MAX_CONTAINERS, COMPLETION_MAX_DEPTH, type ChatTool } from './chat-types.js';

/** A tool the device listed: what the model calls it, and what the device calls it. */
export interface ToolSpec {
  /** The function name offered to the model (unique in its list). */
  readonly name: string;
  readonly tool_name: string;
  readonly tool_type: ToolType;
  readonly description: string;
  readonly parameters: Record<string, unknown>;
}

export const LIST_TOOLS = 'list_tools';
/** The function aipd adds: the model calls it to end the task with its answer. */
export const FINISH = 'finish';
export const TOOL_TYPES: readonly ToolType[] = ['action', 'data_collection'];
/** Function names the chat API accepts. */
const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** One `list_tools` command per tool type, as UFO's agents begin an app context. */
export function listToolsActions(): CommandInput[] {
  return TOOL_TYPES.map((t) => ({ tool_name: LIST_TOOLS, tool_type: t, parameters: { tool_type: t } }));
}

/**
 * The tools in the `list_tools` Results (one per tool type, in TOOL_TYPES order), meta-tools left out, or the
 * reason none could be read. A tool type whose listing failed contributes nothing.
 */
export function toolsFromListing(results: readonly Result[]): ToolSpec[] | string {
  const out: ToolSpec[] = [];
  const taken = new Set<string>();
  const errors: string[] = [];
  TOOL_TYPES.forEach((type, i) => {
    const r = results[i];
    if (!r || r.status !== 'success' || !Array.isArray(r.result)) {
      errors.push(`${type}: ${r?.error ?? (r ? 'the result is not a list' : 'no result')}`);
      return;
    }
    for (const raw of r.result as unknown[]) {
      const spec = toolSpec(raw, type, taken);
      if (spec) {
        taken.add(spec.name);
        out.push(spec);
      }
    }
  });
  return out.length > 0 || errors.length < TOOL_TYPES.length ? out : errors.join('; ');
}

function toolSpec(raw: unknown, listedAs: ToolType, taken: ReadonlySet<string>): ToolSpec | null {
  if (raw === null || typeof raw !== 'object') return null;
  const t = raw as Record<string, unknown>;
  if (typeof t.tool_name !== 'string' || t.tool_name === '' || t.tool_name === LIST_TOOLS) return null;
  const meta = t.meta as Record<string, unknown> | undefined;
  if (meta && meta.is_meta === true) return null;
  const tool_type: ToolType =
    t.tool_type === 'action' || t.tool_type === 'data_collection' ? t.tool_type : listedAs;
  let name = t.tool_name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
  if (taken.has(name) || name === FINISH) name = `${tool_type}__${name}`.slice(0, 64);
  if (!FUNCTION_NAME.test(name) || taken.has(name)) return null;
  const schema = t.input_schema;
  const parameters =
    schema !== null && typeof schema === 'object' && !Array.isArray(schema)
      ? { type: 'object', ...(schema as Record<string, unknown>) }
      : { type: 'object', properties: {} };
  const description =
    typeof t.description === 'string' ? t.description : ((t.title as string | undefined) ?? '');
  return { name, tool_name: t.tool_name, tool_type, description, parameters };
}

/** The `finish` function's parameters (checked as a device tool's are). */
export const FINISH_PARAMETERS: Record<string, unknown> = {
  type: 'object',
  properties: { answer: { type: 'string', description: 'The final answer or summary for the user.' } },
  required: ['answer'],
};

const FINISH_TOOL: ChatTool = {
  type: 'function',
  function: {
    name: FINISH,
    description: 'End the task. Give the final answer for the user in `answer`.',
    parameters: FINISH_PARAMETERS,
  },
};

/** The function definitions offered to the model: the device's tools, then `finish`. */
export function chatTools(tools: readonly ToolSpec[]): ChatTool[] {
  return [
    ...tools.map((t): ChatTool => ({
      type: 'function',
      function: { name: t.name, description: t.description, parameters: t.parameters },
    })),
    FINISH_TOOL,
  ];
}

/** A call's arguments as an object, or what is wrong with them. */
export function checkArguments(
  text: string,
  schema: Record<string, unknown>,
): Record<string, unknown> | string {
  const shape = jsonShape(text, COMPLETION_MAX_DEPTH, COMPLETION_MAX_CONTAINERS);
  if (shape !== null)
    return shape === 'deep'
      ? `the arguments are nested deeper than ${COMPLETION_MAX_DEPTH} levels`
      : `the arguments hold more than ${COMPLETION_MAX_CONTAINERS} objects and arrays`;
  let args: unknown;
  try {
    args = text.trim() === '' ? {} : JSON.parse(text);
  } catch {
    return 'the arguments are not valid JSON';
  }
  if (args === null || typeof args !== 'object' || Array.isArray(args))
    return 'the arguments must be a JSON object';
  const obj = args as Record<string, unknown>;
  const required = Array.isArray(schema.required) ? (schema.required as unknown[]) : [];
  const missing = required.filter((k): k is string => typeof k === 'string' && !(k in obj));
  if (missing.length > 0) return `missing required ${missing.map((k) => `'${k}'`).join(', ')}`;
  const props = (schema.properties ?? {}) as Record<string, { type?: unknown } | undefined>;
  for (const [k, v] of Object.entries(obj)) {
    const want = props[k]?.type;
    if (typeof want === 'string' && !hasType(v, want)) return `'${k}' must be of type ${want}`;
  }
  return obj;
}

function hasType(v: unknown, type: string): boolean {
  switch (type) {
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number';
    case 'integer':
      return Number.isInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'array':
      return Array.isArray(v);
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    case 'null':
      return v === null;
    default:
      return true;
  }
}

/** A Result as the text of a tool message, at most `maxBytes` bytes of UTF-8. */
export function toolMessageText(r: Result, maxBytes: number): string {
  const body =
    r.status === 'success'
      ? textOf(r.result)
      : `${r.status}: ${r.error ?? (r.result === null ? 'no detail' : textOf(r.result))}`;
  return truncateUtf8(body, maxBytes);
}

function textOf(v: unknown): string {
  if (typeof v === 'string') return isImage(v) ? IMAGE_NOTE : v;
  if (v === undefined || v === null) return 'null';
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'string' && isImage(x) ? IMAGE_NOTE : x));
}

const IMAGE_NOTE = '[image omitted]';
function isImage(s: string): boolean {
  return s.startsWith('data:image/');
}
