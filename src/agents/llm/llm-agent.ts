/**
 * The `llm` agent: natural-language tasks, run by a model with tool calling on any OpenAI-compatible endpoint,
 * the way UFO's server-side agents run them (ufo-aip.md §7):
 *
 * - Each routing context (the session class's policy: HostAgent for the first decision on Windows, AppAgent after;
 *   LinuxAgent; MobileAgent) starts with a `list_tools` batch, one command per tool type, sent to that context.
 * - The listed tools are offered as functions (from their `input_schema`), plus `finish`. Each turn's tool calls go
 *   out as one `command` batch routed to the same context; the Results come back as tool messages, truncated.
 * - A call of a tool the device did not list is refused before anything is sent (a UFO device never answers one,
 *   Q9), and the refusal is fed back. Invalid arguments are fed back once; a second turn in a row with invalid
 *   arguments ends the task.
 * - It ends when the model answers without tool calls or calls `finish`: `completed`, with UFO's result shape
 *   `[{request, result: answer}]`. Budgets (steps, tokens) and endpoint errors end it `failed` with the reason.
 * - The conversation is checkpointed around every batch (conversation.ts); a resumed task goes on from there.
 */
import type { Result } from '../../../protocol/index.js';
import { aipError, AipError } from '../../../protocol/index.js';
import type { Agent, AgentContext, AgentOutcome, AgentRouting, AgentRun, CommandBatch } from '../contract.js';
import { jsonSizeEstimate } from '../../lib/json-bound.js';
import { ChatClient, LLM_MAX_CONVERSATION_BYTES, type ChatClientOptions } from './chat-client.js';
import type { ChatMessage, ChatReply, ChatToolCall } from './chat-types.js';
import {
  contextKey,
  newState,
  restoreState,
  systemPrompt,
  type LlmState,
  type PendingBatch,
} from './conversation.js';
import {
  chatTools,
  checkArguments,
  FINISH,
  FINISH_PARAMETERS,
  listToolsActions,
  toolMessageText,
  toolsFromListing,
  type ToolSpec,
} from './tools.js';

export const LLM_AGENT_NAME = 'llm';

export interface LlmAgentOptions extends ChatClientOptions {
  readonly model: string;
  /** Model turns a task may take. */
  readonly maxSteps: number;
  /** Tokens (prompt + completion, summed over calls) a task may use; 0 for no limit. */
  readonly tokenBudget: number;
  readonly temperature: number;
  /** Largest tool message, in bytes of UTF-8. */
  readonly toolResultMaxBytes: number;
  /** Tool calls one turn may ask for; more end the task. Default LLM_MAX_TOOL_CALLS. */
  readonly maxToolCalls?: number;
}

/** LlmAgentOptions.maxToolCalls when none is given (the --llm-max-tool-calls default). */
export const LLM_MAX_TOOL_CALLS = 64;

export class LlmAgent implements Agent {
  readonly name = LLM_AGENT_NAME;
  private readonly client: ChatClient;

  constructor(private readonly opts: LlmAgentOptions) {
    this.client = new ChatClient(opts);
  }

  async *run(ctx: AgentContext): AgentRun {
    let state: LlmState;
    const saved = ctx.resume?.agent === this.name ? ctx.resume.state : null;
    if (saved !== null) {
      const restored = restoreState(saved);
      if (typeof restored === 'string') return failed(`cannot resume the conversation: ${restored}`);
      state = restored;
    } else {
      state = newState(this.opts.model, systemPrompt(ctx.platform), ctx.request);
    }
    try {
      return yield* this.loop(ctx, state);
    } catch (e) {
      if (ctx.signal.aborted) return failed(errorText(ctx.signal.reason));
      if (e instanceof AipError) return failed(e.message);
      // What the model's answers made too big for the engine (a string over its limit): the task's failure.
      if (e instanceof RangeError) return failed(aipError('LLM_BAD_RESPONSE', { detail: e.message }).message);
      throw e;
    }
  }

  private async *loop(
    ctx: AgentContext,
    state: LlmState,
  ): AsyncGenerator<CommandBatch, AgentOutcome, Result[]> {
    for (;;) {
      if (state.pending) {
        const outcome = yield* this.settle(ctx, state, state.pending);
        if (outcome) return outcome;
        continue;
      }
      const route = ctx.routing?.(state.steps) ?? null;
      const key = contextKey(route);
      if (!state.tools[key]) {
        const batch = routed(route, { actions: listToolsActions() });
        await this.save(ctx, state, { kind: 'list', key, batch, slots: [] });
        continue;
      }
      if (state.steps >= this.opts.maxSteps)
        return failed(aipError('LLM_STEP_BUDGET', { max: this.opts.maxSteps }).message);
      const budget = this.opts.tokenBudget;
      if (budget > 0 && state.usage.total_tokens >= budget)
        return failed(aipError('LLM_TOKEN_BUDGET', { used: state.usage.total_tokens, max: budget }).message);

      const tools = state.tools[key];
      const reply = await this.call(ctx, state, tools);
      const calls = reply.tool_calls;
      state.messages.push(
        calls.length > 0
          ? { role: 'assistant', content: reply.content, tool_calls: calls }
          : { role: 'assistant', content: reply.content },
      );
      if (calls.length === 0) {
        const missing = noAnswer(reply.content, reply.finish_reason);
        if (missing) return failed(aipError('LLM_NO_ANSWER', { reason: missing }).message);
        return this.completed(ctx, state, reply.content!);
      }
      const maxCalls = this.opts.maxToolCalls ?? LLM_MAX_TOOL_CALLS;
      if (calls.length > maxCalls)
        return failed(aipError('LLM_TOO_MANY_TOOL_CALLS', { calls: calls.length, max: maxCalls }).message);
      const finish = calls.find((c) => c.function.name === FINISH);
      const finishArgs = finish ? checkArguments(finish.function.arguments, FINISH_PARAMETERS) : null;
      if (finishArgs !== null && typeof finishArgs === 'object')
        return this.completed(ctx, state, finishArgs.answer as string);

      // A `finish` whose arguments are wrong is told so as any other call, and nothing else of the turn ends it.
      const { pending, invalid } = decide(calls, tools, route, key, finishArgs);
      if (invalid) {
        if (state.invalidTurns >= 1) return failed(aipError('LLM_INVALID_TOOL_ARGS', invalid).message);
        state.invalidTurns++;
      } else {
        state.invalidTurns = 0;
      }
      await this.save(ctx, state, pending);
    }
  }

  /** Sends the pending batch (unless nothing of it goes to the device) and folds its Results in; saves. */
  private async *settle(
    ctx: AgentContext,
    state: LlmState,
    p: PendingBatch,
  ): AsyncGenerator<CommandBatch, AgentOutcome | null, Result[]> {
    let results: Result[] = [];
    if (p.batch.actions.length > 0) {
      results = yield p.batch;
      state.batches++;
    }
    if (p.kind === 'list') {
      const tools = toolsFromListing(results);
      if (typeof tools === 'string')
        return failed(
          aipError('LLM_LIST_TOOLS_FAILED', { agent: p.batch.agent_name ?? 'the device', detail: tools })
            .message,
        );
      // Bounded before it is kept (and saved in the checkpoint): a listing larger than the whole conversation may
      // be could never be offered to the model.
      const bytes = jsonSizeEstimate(tools);
      const max = this.opts.maxConversationBytes ?? LLM_MAX_CONVERSATION_BYTES;
      if (bytes > max) return failed(aipError('LLM_CONVERSATION_TOO_LARGE', { bytes, max }).message);
      state.tools[p.key] = tools;
    } else {
      let next = 0;
      for (const slot of p.slots) {
        const text = slot.text ?? this.resultText(results[next++]);
        state.messages.push({ role: 'tool', tool_call_id: slot.id, content: text });
      }
      state.steps++;
    }
    await this.save(ctx, state, null);
    return null;
  }

  private resultText(r: Result | undefined): string {
    if (!r) return 'failure: the device returned no result for this call';
    return toolMessageText(r, this.opts.toolResultMaxBytes);
  }

  private async call(ctx: AgentContext, state: LlmState, tools: readonly ToolSpec[]): Promise<ChatReply> {
    const log = ctx.logger;
    const messages: readonly ChatMessage[] = state.messages;
    log?.debug({ step: state.steps, messages }, 'llm prompt');
    const reply = await this.client.complete(
      {
        model: this.opts.model,
        messages,
        tools: chatTools(tools),
        tool_choice: 'auto',
        temperature: this.opts.temperature,
      },
      ctx.signal,
    );
    const u = state.usage;
    u.calls++;
    u.prompt_tokens += reply.usage.prompt_tokens;
    u.completion_tokens += reply.usage.completion_tokens;
    u.total_tokens += reply.usage.total_tokens;
    const record = {
      model: this.opts.model,
      latency_ms: reply.latency_ms,
      ...reply.usage,
      finish_reason: reply.finish_reason,
      attempts: reply.attempts,
    };
    ctx.modelCall?.(record);
    log?.info({ ...record, step: state.steps, tool_calls: reply.tool_calls.length }, 'llm call');
    log?.debug({ step: state.steps, content: reply.content, tool_calls: reply.tool_calls }, 'llm reply');
    return reply;
  }

  private async completed(ctx: AgentContext, state: LlmState, answer: string): Promise<AgentOutcome> {
    await this.save(ctx, state, null);
    return { status: 'completed', result: [{ request: ctx.request, result: answer }], error: null };
  }

  /** Sets `pending` and saves the state; resolves once it is committed. */
  private async save(ctx: AgentContext, state: LlmState, pending: PendingBatch | null): Promise<void> {
    state.pending = pending;
    if (!ctx.checkpoint) return;
    await ctx.checkpoint({ agent: this.name, batches: state.batches, state: structuredClone(state) });
  }
}

/**
 * The batch for a turn's tool calls: the listed tools with valid arguments go to the device; a tool that was not
 * listed, or invalid arguments, get their tool message at once and send nothing. `invalid` is the first bad call.
 */
function decide(
  calls: readonly ChatToolCall[],
  tools: readonly ToolSpec[],
  route: AgentRouting | null,
  key: string,
  /** Why the turn's `finish` call's arguments were refused, when it had one. */
  finishRefused: string | null,
): { pending: PendingBatch; invalid: { tool: string; detail: string } | null } {
  const byName = new Map(tools.map((t) => [t.name, t]));
  const batch = routed(route, { actions: [] });
  const slots: { id: string; text: string | null }[] = [];
  let invalid: { tool: string; detail: string } | null = null;
  for (const c of calls) {
    if (c.function.name === FINISH && finishRefused !== null) {
      invalid ??= { tool: FINISH, detail: finishRefused };
      slots.push({
        id: c.id,
        text: aipError('LLM_TOOL_ARGS_REJECTED', { tool: FINISH, detail: finishRefused }).message,
      });
      continue;
    }
    const tool = byName.get(c.function.name);
    if (!tool) {
      slots.push({ id: c.id, text: aipError('LLM_TOOL_NOT_LISTED', { tool: c.function.name }).message });
      continue;
    }
    const args = checkArguments(c.function.arguments, tool.parameters);
    if (typeof args === 'string') {
      invalid ??= { tool: tool.tool_name, detail: args };
      const text = aipError('LLM_TOOL_ARGS_REJECTED', { tool: tool.tool_name, detail: args }).message;
      slots.push({ id: c.id, text });
      continue;
    }
    batch.actions.push({ tool_name: tool.tool_name, tool_type: tool.tool_type, parameters: args });
    slots.push({ id: c.id, text: null });
  }
  return { pending: { kind: 'calls', key, batch, slots }, invalid };
}

/**
 * Why a turn with no tool call is not an answer, or null when it is one: no text, or a model that stopped for a
 * reason other than finishing (its answer cut at the token limit, or withheld by a content filter).
 */
function noAnswer(content: string | null, finishReason: string | null): string | null {
  if (finishReason === 'length') return 'its answer was cut at the token limit (finish_reason "length")';
  if (finishReason === 'content_filter')
    return 'its answer was withheld by a content filter (finish_reason "content_filter")';
  if (content === null || content.trim() === '')
    return `it gave no text (finish_reason ${finishReason === null ? 'missing' : `"${finishReason}"`})`;
  return null;
}

/** `batch` with the routing context set explicitly (so the session keeps it), when there is one. */
function routed(
  route: AgentRouting | null,
  batch: CommandBatch,
): CommandBatch & { actions: CommandBatch['actions'] } {
  if (!route) return batch;
  return {
    ...batch,
    agent_name: route.agent_name,
    process_name: route.process_name,
    root_name: route.root_name,
  };
}

function failed(error: string): AgentOutcome {
  return { status: 'failed', result: { failure: error }, error };
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
