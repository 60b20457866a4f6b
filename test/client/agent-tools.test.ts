/** The device agent's tools: execute_command (process group, timeout, output cap), wait, list_tools. */
import { describe, expect, it } from 'vitest';
import type { Command } from '../../protocol/index.js';
import { executeCommand } from '../../src/client/agent/exec.js';
import { runTool } from '../../src/client/agent/tools.js';
import { ProcessGroups } from '../../src/client/process-group.js';
import { alive, until } from '../helpers/process.js';

const action = (tool_name: string, parameters: Record<string, unknown> = {}): Command => ({
  tool_name,
  parameters,
  tool_type: 'action',
  call_id: 'c1',
});

describe('execute_command', () => {
  it('returns stdout, stderr and the exit code', async () => {
    const ok = await runTool(action('execute_command', { command: 'echo hi; echo warn >&2' }), {
      allowExec: true,
    });
    expect(ok).toMatchObject({
      status: 'success',
      error: null,
      call_id: 'c1',
      result: {
        stdout: 'hi\n',
        stderr: 'warn\n',
        exit_code: 0,
        signal: null,
        timed_out: false,
        truncated: false,
      },
    });
    const bad = await runTool(action('execute_command', { command: 'echo nope >&2; exit 5' }), {
      allowExec: true,
    });
    expect(bad).toMatchObject({ status: 'failure', error: 'nope\n', result: { exit_code: 5 } });
  });

  it('is refused without --allow-exec, and list_tools leaves it out', async () => {
    expect(await runTool(action('execute_command', { command: 'true' }), { allowExec: false })).toMatchObject(
      {
        status: 'failure',
        error: expect.stringContaining('--allow-exec'),
      },
    );
    const listed = await runTool(action('list_tools'), { allowExec: false });
    expect((listed.result as { tool_name: string }[]).map((t) => t.tool_name)).toEqual([
      'echo',
      'wait',
      'list_tools',
    ]);
  });

  it('kills the whole process group at the timeout', async () => {
    const groups = new ProcessGroups();
    const r = await runTool(
      action('execute_command', { command: 'sleep 30 & echo $$ $!; wait', timeout_ms: 300 }),
      {
        allowExec: true,
        groups,
      },
    );
    expect(r).toMatchObject({
      status: 'failure',
      error: expect.stringContaining('timed out after 300 ms'),
      result: { timed_out: true, exit_code: null, signal: 'SIGKILL' },
    });
    const pids = (r.result as { stdout: string }).stdout.trim().split(' ').map(Number);
    expect(pids).toHaveLength(2);
    await until(() => pids.every((p) => !alive(p)));
    expect(groups.size).toBe(0);
  });

  it('caps each output stream and says it truncated', async () => {
    const r = await executeCommand('head -c 5000 /dev/zero; echo tail >&2', { outputCap: 1000 });
    expect(r.stdout).toHaveLength(1000);
    expect(r.stderr).toBe('tail\n');
    expect(r.truncated).toBe(true);
    expect(r.exit_code).toBe(0);
  });
});

describe('wait', () => {
  it('ends at once when the device stops', async () => {
    const ac = new AbortController();
    const pending = runTool(action('wait', { ms: 60_000 }), { allowExec: false, signal: ac.signal });
    ac.abort();
    expect(await pending).toMatchObject({ status: 'failure', error: 'the device is stopping' });
    expect(await runTool(action('wait', { ms: 1 }), { allowExec: false })).toMatchObject({
      status: 'success',
      result: 'waited 1 ms',
    });
  });
});
