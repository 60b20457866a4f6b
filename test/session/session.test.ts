import { describe, expect, it } from 'vitest';
import { aipError } from '../../protocol/index.js';
import type { Result } from '../../protocol/index.js';
import { SessionFactory } from '../../src/session/factory.js';
import {
  LinuxServiceSession,
  MobileServiceSession,
  ServiceSession,
  applicationFor,
} from '../../src/session/service-sessions.js';
import type { Agent, AgentContext, AgentRun, CommandBatch } from '../../src/session/types.js';
import { FakeExecutor } from '../helpers/fake-executor.js';

const cmd = (tool_name: string) => ({ tool_name, tool_type: 'action' as const, parameters: {} });

/** An agent that yields the given batches in order and completes with the results it saw. */
function scripted(
  batches: CommandBatch[],
  name = 'scripted',
): Agent & { seen: Result[][]; ctx: AgentContext | null } {
  const agent = {
    name,
    seen: [] as Result[][],
    ctx: null as AgentContext | null,
    async *run(ctx: AgentContext): AgentRun {
      agent.ctx = ctx;
      for (const b of batches) agent.seen.push(yield b);
      return { status: 'completed', result: { n: agent.seen.length }, error: null };
    },
  };
  return agent;
}

function make(
  cls: typeof ServiceSession | typeof LinuxServiceSession | typeof MobileServiceSession,
  agent: Agent | null,
  extra = {},
) {
  return new cls({ sessionId: 's1', taskName: 't1', request: 'do it', mode: 'service', agent, ...extra });
}

describe('Session run', () => {
  it('drives the agent, feeds results back, and completes with a full history', async () => {
    const agent = scripted([{ actions: [cmd('a')] }, { actions: [cmd('b'), cmd('c')] }]);
    const s = make(LinuxServiceSession, agent);
    const ex = new FakeExecutor();
    expect(s.state).toBe('created');
    const outcome = await s.run(ex);
    expect(outcome).toEqual({ status: 'completed', result: { n: 2 }, error: null });
    expect(agent.seen.map((r) => r.map((x) => x.result))).toEqual([['ok:a'], ['ok:b', 'ok:c']]);
    expect(s.state).toBe('completed');
    expect(s.history.map((h) => h.state)).toEqual(['created', 'running', 'completed']);
    for (const h of s.history) expect(new Date(h.at).toISOString()).toBe(h.at);
    expect(agent.ctx).toMatchObject({
      sessionId: 's1',
      taskName: 't1',
      request: 'do it',
      platform: 'linux',
      mode: 'service',
    });
    expect(agent.ctx?.signal).toBeInstanceOf(AbortSignal);
    expect(s.batchesSent).toBe(2);
  });

  it('returns the same promise on a second run() and runs the agent once', async () => {
    let runs = 0;
    const agent: Agent = {
      name: 'once',
      async *run(): AgentRun {
        runs++;
        yield { actions: [cmd('x')] };
        return { status: 'completed', result: null };
      },
    };
    const s = make(MobileServiceSession, agent);
    const ex = new FakeExecutor();
    const p1 = s.run(ex);
    const p2 = s.run(new FakeExecutor());
    expect(p2).toBe(p1);
    await p1;
    expect(s.run(ex)).toBe(p1);
    expect(runs).toBe(1);
    expect(ex.batches).toHaveLength(1);
  });

  it('ends failed with the agent error, or SESSION_FAILED text when the agent gives none', async () => {
    const failing = (error?: string | null): Agent => ({
      name: 'f',
      // eslint-disable-next-line require-yield
      async *run(): AgentRun {
        return { status: 'failed', result: { partial: true }, error };
      },
    });
    const a = await make(ServiceSession, failing('nope')).run(new FakeExecutor());
    expect(a).toEqual({ status: 'failed', result: { partial: true }, error: 'nope' });
    const b = await make(ServiceSession, failing(null)).run(new FakeExecutor());
    expect(b.error).toBe(aipError('SESSION_FAILED').message);
  });

  it('turns an agent that throws into failed with the exception text, and records it in history', async () => {
    const agent: Agent = {
      name: 'thrower',
      async *run(): AgentRun {
        yield { actions: [cmd('x')] };
        throw new Error('agent exploded');
      },
    };
    const s = make(LinuxServiceSession, agent);
    const outcome = await s.run(new FakeExecutor());
    expect(outcome).toEqual({ status: 'failed', result: null, error: 'agent exploded' });
    expect(s.history.at(-1)).toMatchObject({ state: 'failed', reason: 'agent exploded' });
  });

  it('ends failed with NOT_A_PLAN when no agent fits the request', async () => {
    const s = new SessionFactory().create({
      mode: 'service',
      platform: 'windows',
      sessionId: 's',
      taskName: 't',
      request: 'open notepad',
    });
    const ex = new FakeExecutor();
    expect(await s.run(ex)).toEqual({
      status: 'failed',
      result: null,
      error: aipError('NOT_A_PLAN').message,
    });
    expect(ex.batches).toHaveLength(0);
    expect(s.state).toBe('failed');
  });
});

describe('agent_name policy per session class', () => {
  const three = [{ actions: [cmd('a')] }, { actions: [cmd('b')] }, { actions: [cmd('c')] }];

  it('ServiceSession: HostAgent first, then AppAgent with the application of the plan object', async () => {
    const s = make(ServiceSession, scripted(three), {
      request: JSON.stringify({ object: 'Report.DOCX', steps: [] }),
    });
    const ex = new FakeExecutor();
    await s.run(ex);
    expect(ex.batches.map((b) => [b.agent_name, b.process_name, b.root_name])).toEqual([
      ['HostAgent', null, null],
      ['AppAgent', 'WINWORD.EXE', 'WINWORD.EXE'],
      ['AppAgent', 'WINWORD.EXE', 'WINWORD.EXE'],
    ]);
  });

  it('ServiceSession: unknown or missing object gives AppAgent with null names', async () => {
    for (const target of ['notes.txt', null]) {
      const ex = new FakeExecutor();
      await make(ServiceSession, scripted(three), { target }).run(ex);
      expect(ex.batches[1]).toMatchObject({ agent_name: 'AppAgent', process_name: null, root_name: null });
    }
  });

  it('ServiceSession: a batch that sets its own routing keeps it (explicit null included)', async () => {
    const batches: CommandBatch[] = [
      { agent_name: 'AppAgent', process_name: 'explorer.exe', actions: [cmd('a')] },
      { process_name: null, actions: [cmd('b')] },
      { agent_name: 'HostAgent', actions: [cmd('c')] },
    ];
    const ex = new FakeExecutor();
    await make(ServiceSession, scripted(batches), { target: 'deck.pptx' }).run(ex);
    expect(ex.batches.map((b) => [b.agent_name, b.process_name, b.root_name])).toEqual([
      ['AppAgent', 'explorer.exe', null],
      ['AppAgent', null, 'POWERPNT.EXE'],
      ['HostAgent', 'POWERPNT.EXE', 'POWERPNT.EXE'],
    ]);
  });

  it('LinuxServiceSession uses LinuxAgent and MobileServiceSession uses MobileAgent for every batch', async () => {
    for (const [cls, name] of [
      [LinuxServiceSession, 'LinuxAgent'],
      [MobileServiceSession, 'MobileAgent'],
    ] as const) {
      const ex = new FakeExecutor();
      await make(cls, scripted(three), { target: 'a.docx' }).run(ex);
      expect(ex.batches.map((b) => [b.agent_name, b.process_name, b.root_name])).toEqual(
        three.map(() => [name, null, null]),
      );
    }
  });

  it('maps document extensions to Office applications', () => {
    expect(applicationFor('a.docx')).toBe('WINWORD.EXE');
    expect(applicationFor('dir.v2/b.XLSX')).toBe('EXCEL.EXE');
    expect(applicationFor('c.pptx')).toBe('POWERPNT.EXE');
    expect(applicationFor('d.pdf')).toBeNull();
    expect(applicationFor('docx')).toBeNull();
    expect(applicationFor(null)).toBeNull();
  });
});

describe('cancellation', () => {
  it('stops promptly while the executor hangs, aborts the signal, and reports failed with the reason', async () => {
    const agent = scripted([
      { actions: [cmd('fast')] },
      { actions: [cmd('hang')] },
      { actions: [cmd('never')] },
    ]);
    const s = make(LinuxServiceSession, agent);
    const ex = new FakeExecutor({ hangOn: ['hang'] });
    const p = s.run(ex);
    await ex.waitForBatches(2);
    expect(s.state).toBe('running');
    expect(s.cancel('device_disconnected')).toBe(true);
    const outcome = await p;
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toBe('device_disconnected');
    expect(s.state).toBe('cancelled');
    expect(s.history.map((h) => h.state)).toEqual(['created', 'running', 'cancelled']);
    expect(s.history.at(-1)?.reason).toBe('device_disconnected');
    expect(ex.aborted).toBe(1);
    expect(ex.batches).toHaveLength(2); // the third batch never went out
    expect(agent.ctx?.signal.aborted).toBe(true);
    expect(s.cancel('again')).toBe(false);
  });

  it('stops even when the executor ignores the signal', async () => {
    const agent = scripted([{ actions: [cmd('x')] }]);
    const s = make(MobileServiceSession, agent);
    const deaf = { execute: () => new Promise<Result[]>(() => undefined) };
    const p = s.run(deaf);
    await new Promise((r) => setImmediate(r));
    s.cancel('stop');
    expect(await p).toMatchObject({ status: 'failed', error: 'stop' });
  });

  it('stops while the agent itself is busy (not waiting on a batch)', async () => {
    const agent: Agent = {
      name: 'slow',
      // eslint-disable-next-line require-yield
      async *run(): AgentRun {
        await new Promise(() => undefined);
        return { status: 'completed', result: null };
      },
    };
    const s = make(ServiceSession, agent);
    const p = s.run(new FakeExecutor());
    await new Promise((r) => setImmediate(r));
    s.cancel('bye');
    expect(await p).toEqual({ status: 'failed', result: null, error: 'bye' });
  });

  it('cancel before run: run resolves failed at once and never starts the agent', async () => {
    const agent = scripted([{ actions: [cmd('x')] }]);
    const s = make(ServiceSession, agent);
    s.cancel('server shutdown');
    const ex = new FakeExecutor();
    expect(await s.run(ex)).toEqual({ status: 'failed', result: null, error: 'server shutdown' });
    expect(ex.batches).toHaveLength(0);
    expect(agent.ctx).toBeNull();
    expect(s.history.map((h) => h.state)).toEqual(['created', 'cancelled']);
  });

  it('cancel after completion does nothing', async () => {
    const s = make(ServiceSession, scripted([]));
    await s.run(new FakeExecutor());
    expect(s.cancel('late')).toBe(false);
    expect(s.state).toBe('completed');
  });
});
