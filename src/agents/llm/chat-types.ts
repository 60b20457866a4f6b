/**
 * The chat-completions wire format, as far as the LLM agent uses it: messages with tool calls, function tools, and
 * the parse of a completion. Parsing is lenient where compatible servers differ (Ollama may send `arguments` as an
 * object, some servers omit `usage` or a tool call's `id`) and strict where the agent needs something (a choice
 * with a message).
 */
import { z } from 'zod';
import { jsonShape } from '../../../protocol/index.js';

export interface ChatToolCall {
  readonly id: string;
  readonly type: 'function';
  readonly function: { readonly name: string; readonly arguments: string };
}

export type ChatMessage =
  | { readonly role: 'system' | 'user'; readonly content: string }
  | { readonly role: 'assistant'; readonly content: string | null; readonly tool_calls?: ChatToolCall[] }
  | { readonly role: 'tool'; readonly tool_call_id: string; readonly content: string };

export interface ChatTool {
  readonly type: 'function';
  readonly function: {
    readonly name: string;
    readonly description?: string;
    readonly parameters: Record<string, unknown>;
  };
}

export interface ChatRequest {
  readonly model: string;
  readonly messages: readonly ChatMessage[];
  readonly tools?: readonly ChatTool[];
  readonly tool_choice?: 'auto' | 'none' | 'required';
  readonly temperature?: number;
  readonly max_tokens?: number;
}

export interface TokenUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

export interface ChatReply {
  readonly content: string | null;
  readonly tool_calls: ChatToolCall[];
  readonly finish_reason: string | null;
  readonly usage: TokenUsage;
  /** HTTP attempts it took. */
  readonly attempts: number;
  /** Wall time of the call, retries included. */
  readonly latency_ms: number;
}

const count = z.number().int().nonnegative().catch(0).default(0);

const Completion = z.object({
  choices: z
    .array(
      z.object({
        message: z.object({
          content: z.string().nullable().optional(),
          tool_calls: z
            .array(
              z.object({
                id: z.string().optional(),
                function: z.object({
                  name: z.string(),
                  arguments: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
                }),
              }),
            )
            .nullable()
            .optional(),
        }),
        finish_reason: z.string().nullable().optional(),
      }),
    )
    .min(1),
  usage: z
    .object({ prompt_tokens: count, completion_tokens: count, total_tokens: count })
    .nullable()
    .optional(),
});

/** How deep a completion body, and a tool call's arguments in OpenAI's string form, may nest, and how many objects and
 * arrays each may hold. */
export const COMPLETION_MAX_DEPTH = 64;
export const COMPLETION_MAX_CONTAINERS = 100_000;

/** The first choice of a completion body, or a sentence saying why it is not one. */
export function parseCompletion(text: string): Omit<ChatReply, 'attempts' | 'latency_ms'> | string {
  const shape = jsonShape(text, COMPLETION_MAX_DEPTH, COMPLETION_MAX_CONTAINERS);
  if (shape !== null)
    return shape === 'deep'
      ? `the body is nested deeper than ${COMPLETION_MAX_DEPTH} levels`
      : `the body holds more than ${COMPLETION_MAX_CONTAINERS} objects and arrays`;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return 'the body is not JSON';
  }
  const r = Completion.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    return `${issue.path.join('.') || 'body'}: ${issue.message}`;
  }
  const choice = r.data.choices[0]!;
  const calls = choice.message.tool_calls ?? [];
  const u = r.data.usage;
  return {
    content: choice.message.content ?? null,
    tool_calls: calls.map((c, i) => ({
      id: c.id ?? `call_${i}`,
      type: 'function',
      function: {
        name: c.function.name,
        arguments:
          typeof c.function.arguments === 'string'
            ? c.function.arguments
            : JSON.stringify(c.function.arguments ?? {}),
      },
    })),
    finish_reason: choice.finish_reason ?? null,
    usage: {
      prompt_tokens: u?.prompt_tokens ?? 0,
      completion_tokens: u?.completion_tokens ?? 0,
      total_tokens: u ? u.total_tokens || u.prompt_tokens + u.completion_tokens : 0,
    },
  };
}
