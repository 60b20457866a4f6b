/**
 * The device agent's tools, run for AIP `command` frames: `echo` (returns its parameters), `wait` ({ms}, at most
 * 60 s), `list_tools`, and, only with --allow-exec, `execute_command` ({command, timeout_ms?}: a shell line in its
 * own process group, killed with its group at the timeout; result {stdout, stderr, exit_code, signal, timed_out,
 * truncated}).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command, ResultInput } from '../../../protocol/index.js';
import type { ProcessGroups } from '../process-group.js';
import { executeCommand } from './exec.js';

export const TOOLS = ['echo', 'wait', 'list_tools', 'execute_command'] as const;

export interface ToolContext {
  readonly allowExec: boolean;
  /** Working folder of `execute_command` (the device root, when set). */
  readonly cwd?: string;
  readonly groups?: ProcessGroups;
  /** Aborted when the device stops: a `wait` in progress ends at once. */
  readonly signal?: AbortSignal;
}

export function toolList(allowExec: boolean): string[] {
  return TOOLS.filter((t) => allowExec || t !== 'execute_command');
}

export async function runTool(action: Command, ctx: ToolContext): Promise<ResultInput> {
  const p = action.parameters ?? {};
  const call_id = action.call_id;
  switch (action.tool_name) {
    case 'echo':
      return { status: 'success', result: p, namespace: 'Demo', call_id };
    case 'wait': {
      const ms = typeof p.ms === 'number' && p.ms >= 0 ? Math.min(p.ms, 60_000) : 100;
      const stopped = await sleep(ms, undefined, { signal: ctx.signal }).then(
        () => false,
        () => true,
      );
      if (stopped) return { status: 'failure', error: 'the device is stopping', namespace: 'Demo', call_id };
      return { status: 'success', result: `waited ${ms} ms`, namespace: 'Demo', call_id };
    }
    case 'list_tools':
      return {
        status: 'success',
        result: toolList(ctx.allowExec).map((t) => ({
          tool_key: `action::${t}`,
          tool_name: t,
          namespace: t === 'execute_command' ? 'Shell' : 'Demo',
          tool_type: 'action',
        })),
        namespace: 'Demo',
        call_id,
      };
    case 'execute_command':
      return execute(p, ctx, call_id);
    default:
      return { status: 'failure', error: `unknown tool '${action.tool_name}'`, call_id };
  }
}

async function execute(
  p: Record<string, unknown>,
  ctx: ToolContext,
  call_id: string | null | undefined,
): Promise<ResultInput> {
  if (!ctx.allowExec)
    return {
      status: 'failure',
      error: 'execute_command is disabled (start the device with --allow-exec)',
      call_id,
    };
  if (typeof p.command !== 'string' || p.command.length === 0)
    return { status: 'failure', error: 'execute_command needs command (a non-empty string)', call_id };
  if (p.timeout_ms !== undefined && (typeof p.timeout_ms !== 'number' || !(p.timeout_ms > 0)))
    return { status: 'failure', error: 'timeout_ms must be a positive number', call_id };
  let r;
  try {
    r = await executeCommand(p.command, { timeoutMs: p.timeout_ms, cwd: ctx.cwd, groups: ctx.groups });
  } catch (e) {
    return { status: 'failure', error: `cannot run the command: ${(e as Error).message}`, call_id };
  }
  const notes = [
    r.timed_out ? `timed out after ${p.timeout_ms ?? 60_000} ms; its process group was killed` : null,
    r.truncated ? 'output truncated at 8 MiB per stream' : null,
  ].filter((n) => n !== null);
  const ok = r.exit_code === 0 && !r.timed_out;
  return {
    status: ok ? 'success' : 'failure',
    error: ok ? null : [...notes, r.stderr.slice(-4096) || `exit code ${r.exit_code ?? r.signal}`].join('; '),
    result: r,
    namespace: 'Shell',
    call_id,
  };
}
