/**
 * Crash recovery of a natural-language task, with real processes: `aipd serve` on SQLite runs the `llm` agent
 * against the OpenAI double on a real device. The task takes 4 model turns (3 tool calls, then the answer); the
 * server is killed with SIGKILL while the model call of turn 3 is in flight (steps 1 and 2 done) and restarted on
 * the same port and data dir. The device and the controller reconnect by themselves; the session resumes from its
 * checkpoint and finishes. The double sees the resumed call carry the whole conversation (the same messages as
 * the call in flight at the crash), and the device runs every tool call exactly once. Killed instead while the
 * device runs the batch of step 2, the resumed session sends that batch again (the one step in flight) and asks the
 * model nothing twice.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../protocol/index.js';
import { AipControllerClient } from '../../src/client/index.js';
import { serveProcess, type ServedProcess } from '../helpers/cli-process.js';
import { answerReply, OpenAiDouble, toolCallsReply, type ChatBody } from '../helpers/openai-double.js';
import { toolDevice, type ReceivedCommand } from '../helpers/tool-device.js';

const KEY = 'llm-crash-key';
const procs: ChildProcessWithoutNullStreams[] = [];
const dirs: string[] = [];
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const c of closers.splice(0).reverse()) await c();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Model turns taken so far in a request: its assistant messages. */
const turnOf = (body: ChatBody): number => body.messages.filter((m) => m.role === 'assistant').length;

interface CrashRig {
  readonly double: OpenAiDouble;
  readonly first: ServedProcess;
  readonly received: ReceivedCommand[];
  readonly ends: ServerMessage[];
  /** Set once the thing to crash in is in flight (the model call, or the device's command). */
  inFlight: boolean;
  restart(): Promise<ServedProcess>;
  get(path: string): Promise<unknown>;
}

/**
 * A server child process, the double (4 turns: 3 calls of `execute_command {command: "step N"}`, then the answer),
 * a device and a controller that reconnect, and the task started. `crashIn` says what hangs the first time:
 * the model call of a turn, or the device's command of a step.
 */
async function crashRig(crashIn: { modelTurn: number } | { deviceStep: number }): Promise<CrashRig> {
  const rig = { inFlight: false } as CrashRig & { inFlight: boolean };
  const double = await OpenAiDouble.start((req) => {
    const turn = turnOf(req.body);
    if ('modelTurn' in crashIn && turn === crashIn.modelTurn && !rig.inFlight) {
      rig.inFlight = true;
      return { hang: true };
    }
    if (turn < 3) return toolCallsReply([['execute_command', { command: `step ${turn + 1}` }]], turn);
    return answerReply('All three steps ran.');
  });
  closers.push(() => double.close());
  const dataDir = mkdtempSync(join(tmpdir(), 'aipd-llm-crash-'));
  dirs.push(dataDir);
  const serve = (port: number): Promise<ServedProcess> =>
    serveProcess(port, KEY, {
      extra: ['--resume-grace-ms', '30000', '--llm-base-url', double.baseUrl, '--llm-model', 'crash-model'],
      env: { AIPD_STORE: 'sqlite', AIPD_DATA_DIR: dataDir, AIPD_LLM_API_KEY: 'sk-crash' },
      track: procs,
    });
  const first = await serve(0);
  const url = `ws://127.0.0.1:${first.port}/ws`;
  const reconnect = { initialDelayMs: 100, maxDelayMs: 500 };
  const holdStep = 'deviceStep' in crashIn ? `step ${crashIn.deviceStep}` : null;
  let release: () => void = () => undefined;
  const { device, received } = toolDevice({
    url,
    token: KEY,
    clientId: 'llm-crash-dev',
    platform: 'linux',
    reconnect,
    tools: {
      '*': [
        {
          name: 'execute_command',
          input_schema: {
            type: 'object',
            properties: { command: { type: 'string' } },
            required: ['command'],
          },
          run: (p) => `done: ${String(p.command)}`,
        },
      ],
    },
    // The first run of the held step does not answer while the server lives: the server dies under it. (It lets
    // go once the device is disconnected, so the device's per-session queue is free for the resent batch.)
    before: (cmd) => {
      const command = (cmd.actions?.[0]?.parameters as { command?: string } | null)?.command;
      if (holdStep === null || command !== holdStep || rig.inFlight) return;
      rig.inFlight = true;
      return new Promise<void>((resolve) => (release = resolve));
    },
  });
  device.on('disconnected', () => release());
  const controller = new AipControllerClient({
    url,
    token: KEY,
    clientId: 'llm-crash-ctl',
    targetId: 'llm-crash-dev',
    reconnect,
  });
  controller.on('error', () => undefined);
  closers.push(async () => {
    await device.close();
    await controller.close();
  });
  const ends: ServerMessage[] = [];
  controller.on('frame', (m) => {
    if (m.type === 'task_end') ends.push(m);
  });
  await device.connect();
  await controller.connect();
  await controller.requestTask({ request: 'run three steps', sessionId: 'llm-crash', taskName: 'llm_crash' });
  return Object.assign(rig, {
    double,
    first,
    received,
    ends,
    restart: () => serve(first.port),
    get: async (path: string) =>
      (await fetch(`http://127.0.0.1:${first.port}${path}`, { headers: { 'x-api-key': KEY } })).json(),
  });
}

/** Kills the server once the crash point is in flight, restarts it, and waits for the task to end. */
async function crashAndResume(r: CrashRig): Promise<ServerMessage> {
  await waitUntil(() => r.inFlight, 30_000, 'the crash point');
  r.first.proc.kill('SIGKILL');
  await r.first.exit;
  await r.restart();
  await waitUntil(() => r.ends.length > 0, 60_000, 'task_end after the restart');
  return r.ends[0]!;
}

const commandsRun = (r: CrashRig) => r.received.map((c) => [c.tools[0], c.parameters[0]]);
const LIST = ['list_tools', { tool_type: 'action' }];
const step = (n: number) => ['execute_command', { command: `step ${n}` }];
const COMPLETED = {
  status: 'completed',
  session_id: 'llm-crash',
  result: [{ request: 'run three steps', result: 'All three steps ran.' }],
};

describe('crash recovery of a natural-language task', () => {
  it('resumes the conversation after SIGKILL in step 3 of 4: no step repeated, full history on the resumed call', async () => {
    const r = await crashRig({ modelTurn: 2 });
    expect(await crashAndResume(r)).toMatchObject(COMPLETED);

    // Every tool call ran exactly once: nothing before the crash was sent again.
    expect(commandsRun(r)).toEqual([LIST, step(1), step(2), step(3)]);

    // The double: turns 0, 1, 2 (in flight at the crash, torn down with the server), 2 again (resumed), 3.
    const reqs = r.double.requests;
    expect(reqs.map((q) => turnOf(q.body))).toEqual([0, 1, 2, 2, 3]);
    expect(reqs[2]!.aborted).toBe(true);
    const inFlight = reqs[2]!.body;
    const resumed = reqs[3]!.body;
    expect(resumed.messages).toEqual(inFlight.messages);
    expect(resumed.messages.map((m) => m.role)).toEqual([
      'system',
      'user',
      'assistant',
      'tool',
      'assistant',
      'tool',
    ]);
    expect(resumed.messages.filter((m) => m.role === 'tool').map((m) => m.content)).toEqual([
      'done: step 1',
      'done: step 2',
    ]);
    expect(resumed.tools).toEqual(inFlight.tools);
    for (const q of reqs) {
      expect(q.headers.authorization).toBe('Bearer sk-crash');
      expect(q.body.model).toBe('crash-model');
    }

    const session = (await r.get('/sessions/llm-crash')) as {
      status_history: { status: string }[];
      checkpoint: {
        aip_steps: number;
        agent: { batches: number; state: { steps: number; pending: unknown } };
      };
    };
    expect(session.status_history.map((h) => h.status)).toEqual(['active', 'crashed', 'active', 'completed']);
    expect(session.checkpoint).toMatchObject({
      aip_steps: 4,
      agent: { batches: 4, state: { steps: 3, pending: null } },
    });
    const metrics = (await r.get('/sessions/llm-crash/metrics')) as { llm: { calls: number } };
    // The call in flight at the crash never answered: four calls completed, over both lives of the server.
    expect(metrics.llm.calls).toBe(4);
  }, 120_000);

  it('resumed while the device ran step 2, sends that batch again and asks the model nothing twice', async () => {
    const r = await crashRig({ deviceStep: 2 });
    expect(await crashAndResume(r)).toMatchObject(COMPLETED);
    // Step 2 was in flight: it runs once more; nothing else does.
    expect(commandsRun(r)).toEqual([LIST, step(1), step(2), step(2), step(3)]);
    const reqs = r.double.requests;
    expect(reqs.map((q) => turnOf(q.body))).toEqual([0, 1, 2, 3]);
    expect(reqs[2]!.body.messages.filter((m) => m.role === 'tool').map((m) => m.content)).toEqual([
      'done: step 1',
      'done: step 2',
    ]);
  }, 120_000);
});
