/**
 * Natural-language tasks over real sockets: aipd (port 0) runs the `llm` agent against a scripted OpenAI-compatible
 * double, on a real device client driven by a real controller. The double checks what aipd sends (model, auth
 * header, tools offered, tool messages); the device records every command it receives.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { aipError, type ServerMessage } from '../../protocol/index.js';
import { AipControllerClient } from '../../src/client/index.js';
import type { ServerConfigInput } from '../../src/config.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { planRequest, startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import {
  answerReply,
  OpenAiDouble,
  toolCallsReply,
  USAGE,
  type Reply,
  type Script,
} from '../helpers/openai-double.js';
import { toolDevice, type DeviceTool } from '../helpers/tool-device.js';

const LINUX_TOOLS: DeviceTool[] = [
  {
    name: 'execute_command',
    description: 'Run a shell command',
    input_schema: {
      type: 'object',
      properties: { command: { type: 'string' } },
      required: ['command'],
    },
    run: (p) => `ran: ${String(p.command)}`,
  },
  { name: 'take_screenshot', type: 'data_collection', run: () => 'data:image/png;base64,AAAA' },
];

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Rig {
  double: OpenAiDouble;
  device: ReturnType<typeof toolDevice>;
  controller: AipControllerClient;
  server: Awaited<ReturnType<typeof startTestServer>>;
  run: (request: string, sessionId?: string) => Promise<ServerMessage>;
  http: (method: string, path: string, body?: unknown) => Promise<unknown>;
}

async function rig(
  script: Reply[] | Script,
  opts: {
    platform?: 'linux' | 'windows';
    tools?: Record<string, DeviceTool[]>;
    config?: ServerConfigInput;
    logger?: Logger;
  } = {},
): Promise<Rig> {
  const double = await OpenAiDouble.start(script);
  cleanups.push(() => double.close());
  const server = await startTestServer(
    {
      llmBaseUrl: double.baseUrl,
      llmModel: 'test-model',
      llmApiKey: 'sk-test',
      llmRetryBaseMs: 10,
      ...opts.config,
    },
    opts.logger ? { logger: opts.logger } : {},
  );
  cleanups.push(() => server.close());
  const url = `ws://127.0.0.1:${server.port}/ws`;
  const device = toolDevice({
    url,
    token: TEST_KEY,
    clientId: 'nl-dev',
    platform: opts.platform ?? 'linux',
    reconnect: false,
    tools: opts.tools ?? { '*': LINUX_TOOLS },
  });
  const controller = new AipControllerClient({
    url,
    token: TEST_KEY,
    clientId: 'nl-ctl@nl-dev',
    targetId: 'nl-dev',
    reconnect: false,
  });
  controller.on('error', () => undefined);
  cleanups.push(async () => {
    await controller.close();
    await device.device.close();
  });
  await device.device.connect();
  await controller.connect();
  const base = `http://127.0.0.1:${server.port}`;
  return {
    double,
    device,
    controller,
    server,
    run: (request, sessionId = 'nl-task') => controller.runTask({ request, sessionId, timeoutMs: 30_000 }),
    http: async (method, path, body) => {
      const headers: Record<string, string> = { 'x-api-key': TEST_KEY };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${base}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return res.json();
    },
  };
}

function toolMessages(body: {
  messages: { role: string; tool_call_id?: string; content?: string | null }[];
}) {
  return body.messages.filter((m) => m.role === 'tool');
}

describe('natural-language tasks (llm agent)', () => {
  it('lists the tools, runs two tool calls, and puts the answer in task_end.result', async () => {
    const r = await rig([
      toolCallsReply([['execute_command', { command: 'ls /tmp' }]], 0),
      toolCallsReply([['execute_command', { command: 'wc -l /tmp/a' }]], 1),
      answerReply('There are 2 files in /tmp.'),
    ]);
    const end = await r.run('list the files in /tmp');
    expect(end).toMatchObject({ status: 'completed', error: null });
    expect(end.result).toEqual([{ request: 'list the files in /tmp', result: 'There are 2 files in /tmp.' }]);

    // The device: list_tools per tool type first, then the two calls, all routed to LinuxAgent.
    expect(r.device.received.map((c) => c.tools)).toEqual([
      ['list_tools', 'list_tools'],
      ['execute_command'],
      ['execute_command'],
    ]);
    expect(r.device.received[0]!.parameters).toEqual([
      { tool_type: 'action' },
      { tool_type: 'data_collection' },
    ]);
    expect(r.device.received.map((c) => c.agent_name)).toEqual(['LinuxAgent', 'LinuxAgent', 'LinuxAgent']);
    expect(r.device.received[2]!.parameters).toEqual([{ command: 'wc -l /tmp/a' }]);

    // The double: model, auth, tools offered from input_schema, and the tool messages fed back.
    const reqs = r.double.requests;
    expect(reqs).toHaveLength(3);
    for (const q of reqs) {
      expect(q.path).toBe('/v1/chat/completions');
      expect(q.headers.authorization).toBe('Bearer sk-test');
      expect(q.body).toMatchObject({ model: 'test-model', tool_choice: 'auto', temperature: 0 });
    }
    const tools = reqs[0]!.body.tools!.map((t) => t.function);
    expect(tools.map((t) => t.name)).toEqual(['execute_command', 'take_screenshot', 'finish']);
    expect(tools[0]!.parameters).toEqual(LINUX_TOOLS[0]!.input_schema);
    expect(reqs[0]!.body.messages.map((m) => m.role)).toEqual(['system', 'user']);
    expect(reqs[0]!.body.messages[1]!.content).toBe('list the files in /tmp');
    expect(toolMessages(reqs[1]!.body)).toEqual([
      { role: 'tool', tool_call_id: 'call_0_0', content: 'ran: ls /tmp' },
    ]);
    expect(toolMessages(reqs[2]!.body).map((m) => m.content)).toEqual(['ran: ls /tmp', 'ran: wc -l /tmp/a']);

    // The checkpoint (GET /sessions/{id}) holds the conversation; the metrics hold the tokens.
    const session = (await r.http('GET', '/sessions/nl-task')) as {
      checkpoint: {
        aip_steps: number;
        agent: { agent: string; batches: number; state: Record<string, unknown> };
      };
    };
    expect(session.checkpoint.aip_steps).toBe(3);
    expect(session.checkpoint.agent).toMatchObject({ agent: 'llm', batches: 3 });
    expect(session.checkpoint.agent.state).toMatchObject({ steps: 2, pending: null, model: 'test-model' });
    expect((session.checkpoint.agent.state.messages as unknown[]).length).toBe(7);
    const metrics = (await r.http('GET', '/sessions/nl-task/metrics')) as { llm: Record<string, number> };
    expect(metrics.llm).toEqual({
      calls: 3,
      prompt_tokens: 3 * USAGE.prompt_tokens,
      completion_tokens: 3 * USAGE.completion_tokens,
      total_tokens: 3 * USAGE.total_tokens,
    });
  });

  it('runs a task dispatched over HTTP as a new user would (POST /api/dispatch, then /api/task_result)', async () => {
    const r = await rig([
      toolCallsReply([['execute_command', { command: 'ls /tmp' }]], 0),
      answerReply('a b'),
    ]);
    const dispatched = await r.http('POST', '/api/dispatch', {
      client_id: 'nl-dev',
      request: 'list the files in /tmp',
      task_name: 'ls_tmp',
    });
    expect(dispatched).toMatchObject({ status: 'dispatched', task_name: 'ls_tmp' });
    let result: Record<string, unknown> = {};
    await r.double.until(() => r.double.requests.length === 2, 'both model calls');
    for (let i = 0; i < 200 && result.status !== 'done'; i++) {
      result = (await r.http('GET', '/api/task_result/ls_tmp')) as Record<string, unknown>;
      if (result.status !== 'done') await new Promise((res) => setTimeout(res, 25));
    }
    expect(result).toMatchObject({
      status: 'done',
      task_status: 'completed',
      result: [{ request: 'list the files in /tmp', result: 'a b' }],
    });
    expect(r.device.received.map((c) => c.tools)).toEqual([
      ['list_tools', 'list_tools'],
      ['execute_command'],
    ]);
  });

  it('sends a UFO-shaped Windows device HostAgent first, then AppAgent, each with its own tools', async () => {
    const tools = {
      HostAgent: [
        {
          name: 'select_application_window',
          input_schema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
        },
      ],
      AppAgent: [
        {
          name: 'set_edit_text',
          input_schema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
        },
      ],
    };
    const r = await rig(
      [
        toolCallsReply([['select_application_window', { name: 'Notepad' }]], 0),
        toolCallsReply([['set_edit_text', { text: 'hello' }]], 1),
        toolCallsReply([['finish', { answer: 'Typed hello in Notepad.' }]], 2),
      ],
      { platform: 'windows', tools },
    );
    const end = await r.run('Open Notepad and type hello');
    expect(end).toMatchObject({ status: 'completed' });
    expect(end.result).toEqual([
      { request: 'Open Notepad and type hello', result: 'Typed hello in Notepad.' },
    ]);
    expect(r.device.received.map((c) => [c.agent_name, ...c.tools])).toEqual([
      ['HostAgent', 'list_tools', 'list_tools'],
      ['HostAgent', 'select_application_window'],
      ['AppAgent', 'list_tools', 'list_tools'],
      ['AppAgent', 'set_edit_text'],
    ]);
    const offered = r.double.requests.map((q) => q.body.tools!.map((t) => t.function.name));
    expect(offered).toEqual([
      ['select_application_window', 'finish'],
      ['set_edit_text', 'finish'],
      ['set_edit_text', 'finish'],
    ]);
  });

  it('keeps plans on the plan agent: no model call', async () => {
    const r = await rig([]);
    const end = await r.run(planRequest(2, 'execute_command'));
    expect(end).toMatchObject({ status: 'completed' });
    expect((end.result as { steps_completed: number }).steps_completed).toBe(2);
    expect(r.double.requests).toHaveLength(0);
  });

  it('retries a 429 after its Retry-After, and a 503 with backoff', async () => {
    const r = await rig([
      { status: 429, headers: { 'retry-after': '1' }, body: { error: { message: 'rate limited' } } },
      { status: 503, body: { error: { message: 'overloaded' } } },
      answerReply('done'),
    ]);
    const end = await r.run('say done');
    expect(end).toMatchObject({ status: 'completed', result: [{ request: 'say done', result: 'done' }] });
    expect(r.double.requests).toHaveLength(3);
    // The same call each time.
    expect(r.double.requests[1]!.body).toEqual(r.double.requests[0]!.body);
    expect(r.double.requests[2]!.body).toEqual(r.double.requests[0]!.body);
    const events = (await r.http('GET', '/sessions/nl-task/events')) as {
      type: string;
      data: Record<string, unknown>;
    }[];
    const calls = events.filter((e) => e.type === 'llm.call');
    expect(calls.map((e) => e.data.attempts)).toEqual([3]);
  });

  it('ends the task failed when the step budget is spent', async () => {
    const r = await rig((_req, i) => toolCallsReply([['execute_command', { command: `echo ${i}` }]], i), {
      config: { llmMaxSteps: 2 },
    });
    const end = await r.run('loop forever');
    expect(end).toMatchObject({ status: 'failed', error: aipError('LLM_STEP_BUDGET', { max: 2 }).message });
    expect(r.double.requests).toHaveLength(2);
    expect(r.device.received.map((c) => c.tools[0])).toEqual([
      'list_tools',
      'execute_command',
      'execute_command',
    ]);
  });

  it('aborts the HTTP request when the task is cancelled mid-call', async () => {
    const r = await rig([{ hang: true }]);
    const { sessionId } = await r.controller.requestTask({ request: 'think hard', sessionId: 'nl-cancel' });
    await r.double.until(() => r.double.requests.length === 1, 'the model call');
    expect(r.double.requests[0]!.aborted).toBe(false);
    expect(await r.http('DELETE', `/api/sessions/${sessionId}`)).toEqual({
      status: 'cancelled',
      session_id: sessionId,
    });
    await r.double.until(() => r.double.requests[0]!.aborted, 'the request to be aborted');
    const end = await r.controller.waitTaskEnd(sessionId, 10_000);
    expect(end).toMatchObject({ status: 'failed', error: aipError('CANCELLED_BY_API').message });
  });

  it('feeds invalid tool arguments back once; a second invalid turn in a row ends the task failed', async () => {
    const r = await rig([
      toolCallsReply([['execute_command', '{"command": ']], 0),
      toolCallsReply([['execute_command', { command: 42 }]], 1),
      toolCallsReply([['execute_command', { command: 'pwd' }]], 2),
      answerReply('ok'),
    ]);
    // Turn 1 invalid (fed back), turn 2 invalid again → failed; the device never saw a bad call.
    const end = await r.run('where am I');
    expect(end).toMatchObject({
      status: 'failed',
      error: aipError('LLM_INVALID_TOOL_ARGS', {
        tool: 'execute_command',
        detail: "'command' must be of type string",
      }).message,
    });
    expect(toolMessages(r.double.requests[1]!.body)).toEqual([
      {
        role: 'tool',
        tool_call_id: 'call_0_0',
        content: aipError('LLM_TOOL_ARGS_REJECTED', {
          tool: 'execute_command',
          detail: 'the arguments are not valid JSON',
        }).message,
      },
    ]);
    expect(r.device.received.map((c) => c.tools)).toEqual([['list_tools', 'list_tools']]);
  });

  it('runs the call the model corrects after its invalid arguments were fed back', async () => {
    const r = await rig([
      toolCallsReply([['execute_command', {}]], 0),
      toolCallsReply([['execute_command', { command: 'pwd' }]], 1),
      answerReply('in /'),
    ]);
    const end = await r.run('where am I');
    expect(end).toMatchObject({ status: 'completed', result: [{ request: 'where am I', result: 'in /' }] });
    expect(toolMessages(r.double.requests[1]!.body)[0]!.content).toContain("missing required 'command'");
    expect(r.device.received.map((c) => c.tools)).toEqual([
      ['list_tools', 'list_tools'],
      ['execute_command'],
    ]);
  });

  it('never sends a tool the device did not list, and tells the model', async () => {
    const r = await rig([
      toolCallsReply(
        [
          ['format_disk', { drive: 'C:' }],
          ['execute_command', { command: 'ls' }],
        ],
        0,
      ),
      answerReply('listed'),
    ]);
    const end = await r.run('list files');
    expect(end).toMatchObject({ status: 'completed' });
    expect(r.device.received.flatMap((c) => c.tools)).not.toContain('format_disk');
    expect(r.device.received.map((c) => c.tools)).toEqual([
      ['list_tools', 'list_tools'],
      ['execute_command'],
    ]);
    expect(toolMessages(r.double.requests[1]!.body)).toEqual([
      {
        role: 'tool',
        tool_call_id: 'call_0_0',
        content: aipError('LLM_TOOL_NOT_LISTED', { tool: 'format_disk' }).message,
      },
      { role: 'tool', tool_call_id: 'call_0_1', content: 'ran: ls' },
    ]);
  });

  it('ends the task failed, naming the endpoint, when it is unreachable', async () => {
    // Port 2: nothing listens there, and no test's port 0 is given it (fetch refuses port 1). A port freed by a
    // closed server could be taken meanwhile by a server of a test file running alongside, which then answers.
    const url = 'http://127.0.0.1:2/v1';
    const r = await rig([], { config: { llmBaseUrl: url, llmRetries: 1 } });
    const end = await r.run('anything');
    expect(end.status).toBe('failed');
    expect(end.error).toBe(
      aipError('LLM_UNREACHABLE', { url: `${url}/chat/completions`, reason: 'ECONNREFUSED' }).message,
    );
  });

  it('logs each call (model, latency, tokens, finish reason) at info, the prompt only at debug, never the key', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger('debug', {
      write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>),
    });
    const r = await rig(
      [toolCallsReply([['execute_command', { command: 'ls' }]], 0), answerReply('the files')],
      {
        logger,
      },
    );
    await r.run('list the secret files');
    const calls = lines.filter((l) => l.msg === 'llm call');
    expect(calls).toHaveLength(2);
    for (const c of calls) {
      expect(c).toMatchObject({
        level: 30,
        session_id: 'nl-task',
        model: 'test-model',
        attempts: 1,
        ...USAGE,
      });
      expect(typeof c.latency_ms).toBe('number');
      expect(JSON.stringify(c)).not.toContain('secret files');
    }
    expect(calls.map((c) => c.finish_reason)).toEqual(['tool_calls', 'stop']);
    const prompts = lines.filter((l) => l.msg === 'llm prompt');
    expect(prompts.map((p) => p.level)).toEqual([20, 20]);
    expect(JSON.stringify(prompts[0])).toContain('list the secret files');
    // The prompt text appears only in debug lines; the key in none.
    const infoUp = lines.filter((l) => (l.level as number) >= 30);
    expect(JSON.stringify(infoUp)).not.toContain('list the secret files');
    expect(JSON.stringify(lines)).not.toContain('sk-test');
  });
});
