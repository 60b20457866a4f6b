/**
 * `aipd device`: a sample device built on src/client. It registers, serves a small demo tool set, and can
 * run a plan file as its own task, printing the `task_end` it gets back.
 *
 * Tools: `echo` (returns its parameters), `wait` ({ms}), `list_tools`, and, only with --allow-exec,
 * `execute_command` ({command}: run through /bin/sh, returns stdout/stderr/exit code).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Command, ResultInput, ServerMessage } from '../../protocol/index.js';
import { AipDeviceClient } from '../client/index.js';
import { ConfigError } from '../config.js';

const TOOLS = ['echo', 'wait', 'list_tools', 'execute_command'] as const;

async function runTool(action: Command, allowExec: boolean): Promise<ResultInput> {
  const p = action.parameters ?? {};
  switch (action.tool_name) {
    case 'echo':
      return { status: 'success', result: p, namespace: 'Demo', call_id: action.call_id };
    case 'wait': {
      const ms = typeof p.ms === 'number' ? Math.min(p.ms, 60_000) : 100;
      await new Promise((r) => setTimeout(r, ms));
      return { status: 'success', result: `waited ${ms} ms`, namespace: 'Demo', call_id: action.call_id };
    }
    case 'list_tools':
      return {
        status: 'success',
        result: TOOLS.filter((t) => allowExec || t !== 'execute_command').map((t) => ({
          tool_key: `action::${t}`,
          tool_name: t,
          namespace: 'Demo',
          tool_type: 'action',
        })),
        namespace: 'Demo',
        call_id: action.call_id,
      };
    case 'execute_command': {
      if (!allowExec)
        return {
          status: 'failure',
          error: 'execute_command is disabled (start the device with --allow-exec)',
          call_id: action.call_id,
        };
      const command = typeof p.command === 'string' ? p.command : '';
      return new Promise((resolve) => {
        execFile(
          '/bin/sh',
          ['-c', command],
          { timeout: 60_000, maxBuffer: 8 * 1024 * 1024 },
          (err, stdout, stderr) => {
            const exit = err && typeof err.code === 'number' ? err.code : err ? 1 : 0;
            resolve({
              status: exit === 0 ? 'success' : 'failure',
              error: exit === 0 ? null : stderr || (err?.message ?? 'command failed'),
              result: { stdout, stderr, exit_code: exit },
              namespace: 'Shell',
              call_id: action.call_id,
            });
          },
        );
      });
    }
    default:
      return { status: 'failure', error: `unknown tool '${action.tool_name}'`, call_id: action.call_id };
  }
}

export async function runDevice(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: {
        url: { type: 'string', default: 'ws://127.0.0.1:5000/ws' },
        token: { type: 'string' },
        'client-id': { type: 'string', default: 'demo-device' },
        platform: { type: 'string', default: 'linux' },
        plan: { type: 'string' },
        'allow-exec': { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    throw new ConfigError((err as Error).message.split('\n')[0] ?? 'invalid arguments');
  }
  if (typeof values.token !== 'string') throw new ConfigError('--token: required (the server API key)');
  if (!['windows', 'linux', 'mobile'].includes(values.platform as string))
    throw new ConfigError(`--platform: expected windows, linux or mobile`);
  let plan: string | null = null;
  if (typeof values.plan === 'string') {
    try {
      plan = readFileSync(values.plan, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `--plan: cannot read '${values.plan}': ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
  }
  const allowExec = values['allow-exec'] === true;
  const device = new AipDeviceClient({
    url: values.url as string,
    token: values.token,
    clientId: values['client-id'] as string,
    platform: values.platform as 'windows' | 'linux' | 'mobile',
    onCommand: async (cmd: ServerMessage) => {
      const results: ResultInput[] = [];
      for (const action of cmd.actions ?? []) results.push(await runTool(action, allowExec));
      return results;
    },
  });
  await device.connect();
  process.stdout.write(`registered as ${values['client-id'] as string}\n`);
  if (plan === null) {
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await device.close();
    return 0;
  }
  const { sessionId } = await device.requestTask({ request: plan, taskName: 'sample-plan' });
  const end = await device.waitTaskEnd(sessionId);
  process.stdout.write(
    `${JSON.stringify({ status: end.status, error: end.error, result: end.result }, null, 2)}\n`,
  );
  await device.close();
  return end.status === 'completed' ? 0 : 1;
}
