/**
 * The LLM agent's state: the conversation and what it needs to go on after a crash. It is plain JSON, saved as the
 * session's checkpoint (`checkpoint.agent.state`, readable at GET /sessions/{id}) twice per step:
 *
 * 1. when the model has decided a batch, before it is sent: `pending` holds the batch, so a resume sends exactly
 *    that batch again (or, when its results were recorded before the crash, the executor replays them) instead of
 *    asking the model again;
 * 2. when the batch's results are in: they are tool messages (truncated as the model saw them), `pending` is null,
 *    `steps` and `batches` have moved on.
 *
 * So a resumed conversation repeats nothing but the step in flight at the crash: its batch (at most once more, and
 * not at all if its results were recorded) or its model call.
 */
import type { CommandBatch } from '../contract.js';
import type { ChatMessage } from './chat-types.js';
import type { ToolSpec } from './tools.js';

export const STATE_VERSION = 1;

/** A batch decided but not yet answered. */
export interface PendingBatch {
  /** `list`: a `list_tools` batch for the routing context `key`; `calls`: the model's tool calls. */
  readonly kind: 'list' | 'calls';
  readonly key: string;
  readonly batch: CommandBatch;
  /**
   * For `calls`: one slot per tool call of the assistant turn, in order. `text` is the tool message already known
   * (a refused call); null means the next Result of the batch answers it.
   */
  readonly slots: readonly { readonly id: string; readonly text: string | null }[];
}

export interface UsageTotals {
  calls: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface LlmState {
  readonly v: typeof STATE_VERSION;
  readonly model: string;
  readonly messages: ChatMessage[];
  /** The tools the device listed, by routing context (`agent_name::process_name::root_name`). */
  readonly tools: Record<string, ToolSpec[]>;
  /** Model turns whose tool calls have been answered. */
  steps: number;
  /** Batches whose results the conversation holds (the executor's batch index goes on from here). */
  batches: number;
  readonly usage: UsageTotals;
  /** Consecutive turns with invalid tool arguments: the first is fed back, the second ends the task. */
  invalidTurns: number;
  pending: PendingBatch | null;
}

export function newState(model: string, system: string, request: string): LlmState {
  return {
    v: STATE_VERSION,
    model,
    messages: [
      { role: 'system', content: system },
      { role: 'user', content: request },
    ],
    tools: {},
    steps: 0,
    batches: 0,
    usage: { calls: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    invalidTurns: 0,
    pending: null,
  };
}

/** A saved state, checked enough to go on with; a sentence saying what is wrong otherwise. */
export function restoreState(saved: unknown): LlmState | string {
  if (saved === null || typeof saved !== 'object') return 'the checkpoint holds no state';
  const s = saved as Partial<LlmState>;
  if (s.v !== STATE_VERSION) return `checkpoint version ${String(s.v)} is not ${STATE_VERSION}`;
  if (!Array.isArray(s.messages) || s.messages.length === 0) return 'the checkpoint holds no messages';
  if (typeof s.steps !== 'number' || typeof s.batches !== 'number') return 'the checkpoint has no step count';
  if (s.tools === null || typeof s.tools !== 'object' || !s.usage) return 'the checkpoint has no tool list';
  return {
    v: STATE_VERSION,
    model: typeof s.model === 'string' ? s.model : '',
    messages: s.messages,
    tools: s.tools,
    steps: s.steps,
    batches: s.batches,
    usage: { ...s.usage },
    invalidTurns: typeof s.invalidTurns === 'number' ? s.invalidTurns : 0,
    pending: s.pending ?? null,
  };
}

/** The routing context key UFO's device uses for its MCP configuration (ufo-aip.md §7.3). */
export function contextKey(
  r: { agent_name: string; process_name: string | null; root_name: string | null } | null,
): string {
  return r ? `${r.agent_name}::${r.process_name ?? ''}::${r.root_name ?? 'default'}` : 'default';
}

export function systemPrompt(platform: string): string {
  return [
    `You operate a ${platform} device for the user through tools. Each tool call runs on the device, and its result comes back to you as a tool message.`,
    'Use only the tools offered, with arguments that match their schemas. Work step by step, looking at each result before the next step.',
    'When the task is done, or cannot be done, call `finish` with your answer for the user (or reply without a tool call).',
  ].join('\n');
}
