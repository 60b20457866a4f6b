/**
 * Crash recovery of a natural-language task, with real processes: `aipd serve` on SQLite runs the `llm` agent
 * against the OpenAI double on a real device. The task takes 4 model turns (3 tool calls, then the answer); the
 * server is killed with SIGKILL while the model call of turn 3 is in flight (steps 1 and 2 done) and restarted on
 * the same port and data dir. The device and the controller reconnect by themselves; the session resumes from its
 * checkpoint and finishes. The double sees the resumed call carry the whole conversation (the same messages as
 * the call in flight at the crash), and the device runs every tool call exactly once.
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
import { toolDevice } from '../helpers/tool-device.js';

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

describe('crash recovery of a natural-language task', () => {
  it('resumes the conversation after SIGKILL in step 3 of 4: no step repeated, full history on the resumed call', async () => {
    let hung = false;
    const double = await OpenAiDouble.start((req) => {
      const turn = turnOf(req.body);
      if (turn === 2 && !hung) {
        hung = true;
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
    });
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
    await controller.requestTask({
      request: 'run three steps',
      sessionId: 'llm-crash',
      taskName: 'llm_crash',
    });

    // Steps 1 and 2 are done and the model call of step 3 is in flight: kill the server.
    await double.until(() => hung, 'the model call of step 3', 30_000);
    first.proc.kill('SIGKILL');
    await first.exit;
    await double.until(() => double.requests[2]!.aborted, 'the in-flight call to drop with the server');

    await serve(first.port);
    await waitUntil(() => ends.length > 0, 60_000, 'task_end after the restart');
    expect(ends[0]).toMatchObject({
      status: 'completed',
      session_id: 'llm-crash',
      result: [{ request: 'run three steps', result: 'All three steps ran.' }],
    });

    // Every tool call ran exactly once: nothing before the crash was sent again.
    expect(received.map((c) => [c.tools[0], c.parameters[0]])).toEqual([
      ['list_tools', { tool_type: 'action' }],
      ['execute_command', { command: 'step 1' }],
      ['execute_command', { command: 'step 2' }],
      ['execute_command', { command: 'step 3' }],
    ]);

    // The double: turns 0, 1, 2 (in flight at the crash), 2 again (resumed), 3.
    const reqs = double.requests;
    expect(reqs.map((q) => turnOf(q.body))).toEqual([0, 1, 2, 2, 3]);
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

    const base = `http://127.0.0.1:${first.port}`;
    const headers = { 'x-api-key': KEY };
    const session = (await (await fetch(`${base}/sessions/llm-crash`, { headers })).json()) as {
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
    const metrics = (await (await fetch(`${base}/sessions/llm-crash/metrics`, { headers })).json()) as {
      llm: { calls: number };
    };
    // The call in flight at the crash never answered: four calls completed, over both lives of the server.
    expect(metrics.llm.calls).toBe(4);
  }, 120_000);
});
