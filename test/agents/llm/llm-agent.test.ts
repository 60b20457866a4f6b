/**
 * The `llm` agent driven directly (no session, no socket) against the OpenAI double: when its checkpoints are
 * saved relative to the batches it yields, how it resumes from a checkpoint with a batch in flight (that batch
 * first, no model call), the token budget, and checkpoints it cannot use.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { aipError, type Result } from '../../../protocol/index.js';
import type { AgentCheckpoint, AgentContext, AgentOutcome, AgentRun } from '../../../src/agents/contract.js';
import type { LlmState } from '../../../src/agents/llm/conversation.js';
import { LlmAgent, type LlmAgentOptions } from '../../../src/agents/llm/llm-agent.js';
import { answerReply, OpenAiDouble, toolCallsReply, type Reply } from '../../helpers/openai-double.js';

const doubles: OpenAiDouble[] = [];
afterEach(async () => {
  for (const d of doubles.splice(0)) await d.close();
});

const TOOL = {
  tool_name: 'type_text',
  tool_type: 'action',
  input_schema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
};
const success = (result: unknown): Result => ({
  status: 'success',
  result,
  error: null,
  namespace: null,
  call_id: null,
});
const LISTING: Result[] = [success([TOOL]), success([])];

async function agent(script: Reply[], opts: Partial<LlmAgentOptions> = {}) {
  const double = await OpenAiDouble.start(script);
  doubles.push(double);
  const a = new LlmAgent({
    baseUrl: double.baseUrl,
    model: 'unit-model',
    timeoutMs: 5_000,
    retries: 0,
    retryBaseMs: 5,
    retryMaxMs: 100,
    maxSteps: 10,
    tokenBudget: 0,
    temperature: 0,
    toolResultMaxBytes: 1024,
    ...opts,
  });
  return { double, agent: a };
}

/** A context that records every checkpoint, tagged with how many batches had been yielded when it was saved. */
function context(resume: AgentCheckpoint | null = null) {
  const saved: { at: number; c: AgentCheckpoint }[] = [];
  let yielded = 0;
  const ctx: AgentContext = {
    sessionId: 's',
    taskName: 't',
    request: 'type hello',
    platform: 'linux',
    mode: 'service',
    signal: new AbortController().signal,
    routing: () => ({ agent_name: 'LinuxAgent', process_name: null, root_name: null }),
    resume,
    checkpoint: (c) => {
      saved.push({ at: yielded, c: structuredClone(c) });
      return Promise.resolve();
    },
  };
  return { ctx, saved, countYield: () => yielded++ };
}

/** Runs `gen` to its end, answering each batch with `answer(batch index)`. */
async function drive(
  gen: AgentRun,
  answer: (i: number) => Result[],
  onYield: () => void,
): Promise<{ outcome: AgentOutcome; batches: unknown[] }> {
  const batches: unknown[] = [];
  let input: Result[] = [];
  for (;;) {
    const step = await gen.next(input);
    if (step.done) return { outcome: step.value, batches };
    onYield();
    batches.push(step.value);
    input = answer(batches.length - 1);
  }
}

const stateOf = (c: AgentCheckpoint): LlmState => c.state as LlmState;

describe('llm agent', () => {
  it('saves the batch it is about to send before yielding it, and the results once they are in', async () => {
    const { agent: a } = await agent([
      toolCallsReply([['type_text', { text: 'hello' }]], 0),
      answerReply('typed'),
    ]);
    const { ctx, saved, countYield } = context();
    const { outcome, batches } = await drive(
      a.run(ctx),
      (i) => (i === 0 ? LISTING : [success('typed!')]),
      countYield,
    );
    expect(outcome).toEqual({
      status: 'completed',
      result: [{ request: 'type hello', result: 'typed' }],
      error: null,
    });
    expect(batches).toHaveLength(2);
    // [yielded so far when saved, pending kind, batches in the state]
    expect(saved.map((s) => [s.at, stateOf(s.c).pending?.kind ?? null, s.c.batches])).toEqual([
      [0, 'list', 0], // list_tools decided, not yet sent
      [1, null, 1], // tools listed
      [1, 'calls', 1], // the model's call decided, not yet sent
      [2, null, 2], // its result folded in
      [2, null, 2], // the answer
    ]);
    const last = stateOf(saved[saved.length - 1]!.c);
    expect(last.steps).toBe(1);
    expect(last.tools['LinuxAgent::::default']!.map((t) => t.tool_name)).toEqual(['type_text']);
    expect(last.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool', 'assistant']);
  });

  it('ends the task when one turn asks for more tool calls than maxToolCalls, sending none of them', async () => {
    const calls: [string, Record<string, unknown>][] = Array.from({ length: 3 }, (_, i) => [
      'type_text',
      { text: `t${i}` },
    ]);
    const { agent: a } = await agent([toolCallsReply(calls, 0)], { maxToolCalls: 2 });
    const { ctx, countYield } = context();
    const { outcome, batches } = await drive(a.run(ctx), () => LISTING, countYield);
    const error = aipError('LLM_TOO_MANY_TOOL_CALLS', { calls: 3, max: 2 }).message;
    expect(outcome).toEqual({ status: 'failed', result: { failure: error }, error });
    expect(batches).toHaveLength(1); // list_tools only
  });

  it('resumed with a batch in flight, sends that batch first without asking the model again', async () => {
    const first = await agent([toolCallsReply([['type_text', { text: 'hello' }]], 0)]);
    const run1 = context();
    const gen = first.agent.run(run1.ctx);
    await gen.next([]); // yields list_tools
    await gen.next(LISTING); // the model decides; yields the call
    const inFlight = run1.saved[run1.saved.length - 1]!.c;
    expect(stateOf(inFlight).pending?.kind).toBe('calls');
    await gen.return({ status: 'failed', result: null }); // the crash

    const second = await agent([answerReply('typed after the crash')]);
    const run2 = context(inFlight);
    const { outcome, batches } = await drive(
      second.agent.run(run2.ctx),
      () => [success('typed!')],
      run2.countYield,
    );
    expect(batches).toEqual([stateOf(inFlight).pending!.batch]);
    expect(batches[0]).toMatchObject({ agent_name: 'LinuxAgent', actions: [{ tool_name: 'type_text' }] });
    expect(outcome.status).toBe('completed');
    expect(first.double.requests).toHaveLength(1);
    expect(second.double.requests).toHaveLength(1);
    const messages = second.double.requests[0]!.body.messages;
    expect(messages.slice(0, 2)).toEqual(first.double.requests[0]!.body.messages);
    expect(messages[2]).toMatchObject({ role: 'assistant', tool_calls: [{ id: 'call_0_0' }] });
    expect(messages[3]).toEqual({ role: 'tool', tool_call_id: 'call_0_0', content: 'typed!' });
  });

  it('ends failed once the token budget is spent', async () => {
    const call = toolCallsReply([['type_text', { text: 'x' }]], 0);
    const { double, agent: a } = await agent([call, call, call], { tokenBudget: 150 });
    const { ctx, countYield } = context();
    const { outcome } = await drive(a.run(ctx), (i) => (i === 0 ? LISTING : [success('ok')]), countYield);
    expect(outcome).toMatchObject({
      status: 'failed',
      error: aipError('LLM_TOKEN_BUDGET', { used: 220, max: 150 }).message,
    });
    expect(double.requests).toHaveLength(2);
  });

  it('tells the model when its finish call has bad arguments, and ends failed if it does it again', async () => {
    const { double, agent: a } = await agent([
      toolCallsReply([['finish', '{not json']], 0),
      toolCallsReply([['finish', { answer: 'all typed' }]], 1),
    ]);
    const { ctx, countYield } = context();
    const { outcome } = await drive(a.run(ctx), () => LISTING, countYield);
    expect(outcome).toMatchObject({ status: 'completed', error: null });
    expect(JSON.stringify(outcome.result)).toContain('all typed');
    const told = (double.requests[1]!.body as { messages: { role: string; content: string }[] }).messages.at(
      -1,
    )!;
    expect(told).toMatchObject({
      role: 'tool',
      content: aipError('LLM_TOOL_ARGS_REJECTED', {
        tool: 'finish',
        detail: 'the arguments are not valid JSON',
      }).message,
    });

    const again = await agent([
      toolCallsReply([['finish', { text: 'no answer field' }]], 0),
      toolCallsReply([['finish', '']], 1),
    ]);
    const second = context();
    const { outcome: failedOutcome } = await drive(
      again.agent.run(second.ctx),
      () => LISTING,
      second.countYield,
    );
    const error = aipError('LLM_INVALID_TOOL_ARGS', {
      tool: 'finish',
      detail: "missing required 'answer'",
    }).message;
    expect(failedOutcome).toEqual({ status: 'failed', result: { failure: error }, error });
  });

  it('ends failed, not completed with an empty answer, when the model gives no text or is cut off', async () => {
    const reply = (content: string | null, finish_reason: string): Reply => ({
      body: {
        id: 'chatcmpl-x',
        object: 'chat.completion',
        choices: [{ index: 0, finish_reason, message: { role: 'assistant', content } }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      },
    });
    const cases: [Reply, string][] = [
      [reply(null, 'stop'), 'it gave no text (finish_reason "stop")'],
      [reply('The answer is', 'length'), 'its answer was cut at the token limit (finish_reason "length")'],
      [
        reply('', 'content_filter'),
        'its answer was withheld by a content filter (finish_reason "content_filter")',
      ],
    ];
    for (const [r, reason] of cases) {
      const { agent: a } = await agent([r]);
      const { ctx, countYield } = context();
      const { outcome } = await drive(a.run(ctx), () => LISTING, countYield);
      const error = aipError('LLM_NO_ANSWER', { reason }).message;
      expect(outcome).toEqual({ status: 'failed', result: { failure: error }, error });
    }
  });

  it('refuses a tool listing larger than the conversation may be, before keeping or saving it', async () => {
    const { double, agent: a } = await agent([], { maxConversationBytes: 4096 });
    const { ctx, saved, countYield } = context();
    const big = { ...TOOL, description: 'x'.repeat(10_000) };
    const { outcome } = await drive(a.run(ctx), () => [success([big]), success([])], countYield);
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toMatch(
      /^The conversation grew to \d+ bytes, over --llm-max-conversation-bytes \(4096\)/,
    );
    expect(double.requests).toHaveLength(0);
    for (const s of saved) expect(JSON.stringify(s.c).length).toBeLessThan(4096);
  });

  it('ends failed when the device lists no tools', async () => {
    const { double, agent: a } = await agent([]);
    const { ctx, countYield } = context();
    const failure: Result = {
      status: 'failure',
      result: null,
      error: 'no MCP',
      namespace: null,
      call_id: null,
    };
    const { outcome } = await drive(a.run(ctx), () => [failure, failure], countYield);
    expect(outcome.error).toBe(
      aipError('LLM_LIST_TOOLS_FAILED', {
        agent: 'LinuxAgent',
        detail: 'action: no MCP; data_collection: no MCP',
      }).message,
    );
    expect(double.requests).toHaveLength(0);
  });

  it('refuses a checkpoint it cannot read, and ignores one another agent wrote', async () => {
    const { agent: a } = await agent([answerReply('fresh')]);
    const broken = context({ agent: 'llm', batches: 0, state: { v: 99 } });
    const { outcome } = await drive(a.run(broken.ctx), () => [], broken.countYield);
    expect(outcome.error).toBe('cannot resume the conversation: checkpoint version 99 is not 1');
    const other = context({ agent: 'plan', batches: 3, state: {} });
    const r = await drive(a.run(other.ctx), () => LISTING, other.countYield);
    expect(r.outcome).toMatchObject({ status: 'completed', result: [{ result: 'fresh' }] });
  });
});
