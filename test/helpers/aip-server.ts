/** Starts a real aipd on port 0 for a test, with a silent logger; always close it in teardown. */
import { silentLogger } from '../../src/logger.js';
import { startServer, type RunningServer, type StartOptions } from '../../src/app/server.js';
import type { ServerConfigInput } from '../../src/config.js';

export const TEST_KEY = 'test-key-0123456789';

export async function startTestServer(
  config: ServerConfigInput = {},
  opts: StartOptions = {},
): Promise<RunningServer & { url: string }> {
  const server = await startServer(
    {
      port: 0,
      host: '127.0.0.1',
      apiKey: TEST_KEY,
      logLevel: 'silent',
      shutdownGraceMs: 500,
      store: 'memory',
      ...config,
    },
    { logger: silentLogger(), ...opts },
  );
  return Object.assign(server, { url: `ws://127.0.0.1:${server.port}/ws?token=${TEST_KEY}` });
}

/** A constellation's `task` frame: `clientId` asks for a plan of `steps` steps on `target`, plus `extra` fields. */
export function constellationTask(
  clientId: string,
  target: string,
  steps: number,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    type: 'task',
    status: 'continue',
    client_type: 'constellation',
    client_id: clientId,
    target_id: target,
    request: planRequest(steps),
    ...extra,
  };
}

/** An inline plan request of `n` single-action steps. */
export function planRequest(n: number, tool = 'noop'): string {
  return JSON.stringify({
    task: 'test plan',
    steps: Array.from({ length: n }, (_, i) => ({
      actions: [{ tool_name: tool, tool_type: 'action', parameters: { i } }],
    })),
  });
}
