import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { aipError } from '../../protocol/index.js';
import { PlanAgent } from '../../src/agents/plan-agent.js';
import type { PlanResult } from '../../src/agents/plan-agent.js';
import { AgentRegistry } from '../../src/agents/registry.js';
import { SessionFactory } from '../../src/session/factory.js';
import type { Agent, AgentRun } from '../../src/session/types.js';
import { FakeExecutor, failure, success } from '../helpers/fake-executor.js';

const act = (tool_name: string, parameters: Record<string, unknown> = {}) => ({
  tool_name,
  tool_type: 'action',
  parameters,
});
const factory = new SessionFactory();
function session(request: string, platform = 'windows', f = factory) {
  return f.create({ mode: 'service', platform, sessionId: 's', taskName: 't', request });
}

describe('plan agent', () => {
  it('runs every step in order, one batch per step, and reports results in order', async () => {
    const plan = {
      task: 'Count words',
      object: 'report.docx',
      steps: [
        { actions: [act('select_application_window', { name: 'Word' })] },
        { actions: [act('click_input'), act('keyboard_input')] },
      ],
    };
    const ex = new FakeExecutor();
    const s = session(JSON.stringify(plan));
    const outcome = await s.run(ex);
    expect(outcome.status).toBe('completed');
    expect(outcome.error).toBeNull();
    const result = outcome.result as PlanResult;
    expect(result.steps_completed).toBe(2);
    expect(result.steps.map((x) => [x.step, x.results.map((r) => r.result)])).toEqual([
      [0, ['ok:select_application_window']],
      [1, ['ok:click_input', 'ok:keyboard_input']],
    ]);
    expect(ex.batches.map((b) => [b.agent_name, b.process_name, b.actions.map((a) => a.tool_name)])).toEqual([
      ['HostAgent', null, ['select_application_window']],
      ['AppAgent', 'WINWORD.EXE', ['click_input', 'keyboard_input']],
    ]);
    expect(ex.batches[0]!.actions[0]!.parameters).toEqual({ name: 'Word' });
  });

  it('a step may set its own agent_name / process_name / root_name', async () => {
    const plan = {
      steps: [
        {
          actions: [act('execute_command')],
          agent_name: 'CustomAgent',
          process_name: 'bash',
          root_name: 'r',
        },
      ],
    };
    const ex = new FakeExecutor();
    await session(JSON.stringify(plan), 'linux').run(ex);
    expect(ex.batches[0]).toMatchObject({ agent_name: 'CustomAgent', process_name: 'bash', root_name: 'r' });
  });

  it('a failing step ends failed naming the step and tool, keeping what completed', async () => {
    const plan = {
      steps: [{ actions: [act('a')] }, { actions: [act('b'), act('c'), act('d')] }, { actions: [act('e')] }],
    };
    const ex = new FakeExecutor({ failOn: { c: 'control not found' } });
    const outcome = await session(JSON.stringify(plan), 'mobile').run(ex);
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toBe(
      aipError('PLAN_STEP_FAILED', { step: 1, tool: 'c', error: 'control not found' }).message,
    );
    expect(outcome.error).toBe("Plan step 1 failed: tool 'c': control not found");
    const result = outcome.result as PlanResult;
    expect(result.steps_completed).toBe(1);
    expect(result.steps.map((x) => [x.step, x.results.map((r) => r.status)])).toEqual([
      [0, ['success']],
      [1, ['success', 'failure', 'skipped']],
    ]);
    expect(ex.batches).toHaveLength(2); // step 2 never ran
  });

  it('keeps step results whole up to resultMaxBytes, lists later steps as omitted, and still fails on them', async () => {
    // Each step answers one result carrying 1,000 characters: about 1,070 bytes of JSON.
    const text = (i: number) => String(i).padEnd(1000, '.');
    const steps = [act('a'), act('b'), act('c'), act('d'), act('e')].map((a) => ({ actions: [a] }));
    const factoryWith = (resultMaxBytes: number) =>
      new SessionFactory({ agents: new AgentRegistry({ plan: { resultMaxBytes } }) });
    const respond = (_: unknown, i: number) => [success(text(i), `c${i}`)];
    const ex = new FakeExecutor({ respond });
    const outcome = await session(JSON.stringify({ steps }), 'linux', factoryWith(2500)).run(ex);
    expect(outcome.status).toBe('completed');
    const result = outcome.result as PlanResult;
    expect(result.steps_completed).toBe(5);
    const size = JSON.stringify([success(text(0), 'c0')]).length;
    // Two steps fit in 2,500 bytes, the third does not; every step is listed, in order.
    expect(result.steps.map((x) => x.step)).toEqual([0, 1, 2, 3, 4]);
    expect(result.steps.slice(0, 2).map((x) => x.results[0]!.result)).toEqual([text(0), text(1)]);
    expect(result.steps.slice(0, 2).every((x) => x.results_omitted === undefined)).toBe(true);
    for (const x of result.steps.slice(2)) {
      expect(x.results).toEqual([]);
      expect(x.results_omitted!.count).toBe(1);
      // The estimate is the JSON size within a few bytes per value.
      expect(Math.abs(x.results_omitted!.bytes - size)).toBeLessThan(32);
    }
    expect(JSON.stringify(result).length).toBeLessThan(2500 + 5 * 100);

    // A step left out still decides the outcome: its failure ends the task, named as before.
    const failing = new FakeExecutor({
      respond: (b, i) => (i === 3 ? [failure('x'.repeat(2000))] : respond(b, i)),
    });
    const failed = await session(JSON.stringify({ steps }), 'linux', factoryWith(2500)).run(failing);
    expect(failed.status).toBe('failed');
    expect(failed.error).toBe(
      aipError('PLAN_STEP_FAILED', { step: 3, tool: 'd', error: 'x'.repeat(2000) }).message,
    );
    const partial = failed.result as PlanResult;
    expect(partial.steps_completed).toBe(3);
    expect(partial.steps[3]).toMatchObject({ step: 3, results: [], results_omitted: { count: 1 } });
    expect(failing.batches).toHaveLength(4);
  });

  it('a plain-language step ends failed with PLAN_STEP_NOT_EXECUTABLE and sends nothing for it', async () => {
    const plan = { steps: [{ actions: [act('a')] }, 'Click Word Count', { actions: [act('b')] }] };
    const ex = new FakeExecutor();
    const outcome = await session(JSON.stringify(plan)).run(ex);
    expect(outcome).toMatchObject({
      status: 'failed',
      error: aipError('PLAN_STEP_NOT_EXECUTABLE', { step: 1 }).message,
    });
    expect((outcome.result as PlanResult).steps_completed).toBe(1);
    expect(ex.batches).toHaveLength(1);
  });

  it('an invalid inline plan ends failed with INVALID_PLAN naming the field, before any command', async () => {
    const ex = new FakeExecutor();
    const a = await session('{"steps": "open word"}').run(ex);
    expect(a.status).toBe('failed');
    expect(a.error).toMatch(/^Invalid plan: steps: /);
    const b = await session(
      JSON.stringify({ steps: [{ actions: [{ tool_name: 'x', tool_type: 'act' }] }] }),
    ).run(ex);
    expect(b.error).toMatch(/^Invalid plan: steps\[0\]\.actions\[0\]\.tool_type: /);
    expect(ex.batches).toHaveLength(0);
  });

  it('an empty plan completes at once with no steps', async () => {
    const ex = new FakeExecutor();
    expect(await session('{"task":"nothing","steps":[]}').run(ex)).toEqual({
      status: 'completed',
      result: { steps_completed: 0, steps: [] },
      error: null,
    });
    expect(ex.batches).toHaveLength(0);
  });

  it('a request that is no plan ends failed with NOT_A_PLAN when no other agent is configured', async () => {
    const outcome = await session('Summarize the document').run(new FakeExecutor());
    expect(outcome).toEqual({ status: 'failed', result: null, error: aipError('NOT_A_PLAN').message });
  });

  it('a request that is no plan goes to the configured default agent', async () => {
    const echo: Agent = {
      name: 'echo',
      async *run(ctx): AgentRun {
        const r = yield {
          actions: [{ tool_name: 'say', tool_type: 'action', parameters: { text: ctx.request } }],
        };
        return { status: 'completed', result: r[0]?.result };
      },
    };
    const f = new SessionFactory({ agents: new AgentRegistry({ agents: [echo], defaultAgent: 'echo' }) });
    const ex = new FakeExecutor();
    expect(await session('hi', 'linux', f).run(ex)).toEqual({
      status: 'completed',
      result: 'ok:say',
      error: null,
    });
    expect(ex.batches[0]!.actions[0]!.parameters).toEqual({ text: 'hi' });
  });

  it('runs a fixed plan given to the constructor instead of the request', async () => {
    const agent = new PlanAgent({
      plan: {
        object: null,
        steps: [{ actions: [{ tool_name: 'z', tool_type: 'action', parameters: null, call_id: null }] }],
      },
    });
    const s = factory.create({
      mode: 'follower',
      platform: 'linux',
      sessionId: 's',
      taskName: 't',
      request: 'ignored',
      agent,
    });
    const ex = new FakeExecutor();
    expect((await s.run(ex)).status).toBe('completed');
    expect(ex.batches[0]!.actions[0]!.tool_name).toBe('z');
  });

  it('reads its plan from a plan file when given one, and fails with INVALID_PLAN when it cannot', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'aipd-planfile-'));
    try {
      const file = join(dir, 'p.json');
      await writeFile(file, JSON.stringify({ object: 'b.xlsx', steps: [{ actions: [act('from_file')] }] }));
      const mk = (planFile: string) =>
        factory.create({
          mode: 'batch_normal',
          platform: 'windows',
          sessionId: 's',
          taskName: 't',
          request: 'x',
          agent: new PlanAgent({ planFile }),
        });
      const ex = new FakeExecutor();
      expect((await mk(file).run(ex)).status).toBe('completed');
      expect(ex.batches.map((b) => b.actions[0]!.tool_name)).toEqual(['from_file']);
      const missing = await mk(join(dir, 'missing.json')).run(ex);
      expect(missing.status).toBe('failed');
      expect(missing.error).toMatch(/^Invalid plan: cannot read .*missing\.json: /);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('on cancellation mid-command reports what completed as the result', async () => {
    const plan = { steps: [{ actions: [act('a')] }, { actions: [act('hang')] }] };
    const ex = new FakeExecutor({ hangOn: ['hang'] });
    const s = session(JSON.stringify(plan), 'linux');
    const p = s.run(ex);
    await ex.waitForBatches(2);
    s.cancel('device_disconnected');
    const outcome = await p;
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toBe('device_disconnected');
    expect(outcome.result).toEqual({
      steps_completed: 1,
      steps: [{ step: 0, results: [expect.objectContaining({ result: 'ok:a' })] }],
    });
    expect(s.state).toBe('cancelled');
  });
});

describe('AgentRegistry', () => {
  it('has the plan agent built in and no default', () => {
    const r = new AgentRegistry();
    expect(r.names).toEqual(['plan']);
    expect(r.select('{"steps":[]}')?.name).toBe('plan');
    expect(r.select('open notepad')).toBeNull();
  });

  it('refuses an unknown default and can clear it', () => {
    const r = new AgentRegistry();
    expect(() => r.setDefault('ghost')).toThrow("Unknown agent 'ghost'");
    r.register({ name: 'nl', run: new PlanAgent().run.bind(new PlanAgent()) }).setDefault('nl');
    expect(r.select('hello')?.name).toBe('nl');
    r.setDefault(null);
    expect(r.select('hello')).toBeNull();
  });
});
