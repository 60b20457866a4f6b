/**
 * `--log-format pretty|json` through the real CLI: one HTTP request, and its access log line carries the same
 * request id the answer had — as a JSON object by default, as a pino-pretty line with `pretty`.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { aipdProcess, collect, waitForLine } from '../helpers/cli-process.js';

const procs: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) if (p.exitCode === null) p.kill('SIGKILL');
});

async function serveAndAsk(format: string) {
  const p = aipdProcess(['serve', '--port', '0', '--api-key', 'k-0123456789abcdef', '--log-format', format]);
  procs.push(p);
  const io = collect(p);
  const [, port] = await waitForLine(io.out, /aipd listening on ws:\/\/127\.0\.0\.1:(\d+)\/ws/);
  const r = await fetch(`http://127.0.0.1:${port}/healthz`);
  const id = r.headers.get('x-request-id')!;
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  await waitForLine(io.err, new RegExp(id));
  p.kill('SIGTERM');
  expect(await io.exit).toBe(0);
  return { id, err: io.err() };
}

describe('--log-format', () => {
  it('json (the default): one JSON object a line, the access line with req_id, route and status', async () => {
    const { id, err } = await serveAndAsk('json');
    const lines = err
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.req_id === id)).toMatchObject({
      msg: 'http request',
      method: 'GET',
      path: '/healthz',
      route: '/healthz',
      status: 200,
    });
  });

  it('pretty: human lines (no JSON), the request id among them', async () => {
    const { id, err } = await serveAndAsk('pretty');
    const line = err.split('\n').find((l) => l.includes('http request'))!;
    expect(line).toBeDefined();
    expect(line.trim().startsWith('{')).toBe(false);
    expect(line).toMatch(/INFO/);
    expect(err).toContain(`req_id: "${id}"`);
  });

  it('refuses another format (exit 2, naming the flag)', async () => {
    const p = aipdProcess(['serve', '--port', '0', '--log-format', 'xml']);
    procs.push(p);
    const io = collect(p);
    expect(await io.exit).toBe(2);
    expect(io.err()).toMatch(/^aipd: --log-format: /);
  });
});
