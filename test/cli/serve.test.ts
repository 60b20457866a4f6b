import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { aipdProcess, collect, waitForLine } from '../helpers/cli-process.js';
import { processNice, threadNices } from '../helpers/proc-nice.js';
import { RawClient } from '../helpers/raw-client.js';

const procs: ChildProcessWithoutNullStreams[] = [];

function aipd(args: string[], env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  const p = aipdProcess(args, env);
  procs.push(p);
  return p;
}

afterEach(() => {
  for (const p of procs.splice(0)) if (p.exitCode === null) p.kill('SIGKILL');
});

describe('aipd serve', () => {
  it('prints its port and a generated 43-character key, serves, and exits 0 on SIGTERM closing sockets with 1001', async () => {
    const p = aipd(['serve', '--port', '0', '--log-level', 'silent']);
    const io = collect(p);
    const [, port] = await waitForLine(io.out, /aipd listening on ws:\/\/127\.0\.0\.1:(\d+)\/ws/);
    const [, key] = await waitForLine(io.out, /API key \(generated\): (\S+)/);
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const c = await RawClient.connect(`ws://127.0.0.1:${port}/ws?token=${key}`);
    expect(await c.register('dev-1')).toMatchObject({ type: 'heartbeat', status: 'ok' });
    p.kill('SIGTERM');
    expect(await c.waitClose(10_000)).toBe(1001);
    expect(await io.exit).toBe(0);
  });

  it('takes flags from the environment and a config file, flags winning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aipd-cfg-'));
    try {
      const file = join(dir, 'aipd.json');
      writeFileSync(file, JSON.stringify({ apiKey: 'from-file', logLevel: 'silent', port: 0 }));
      const p = aipd(['serve', '--config', file], { AIPD_API_KEY: 'from-env' });
      const io = collect(p);
      const [, port] = await waitForLine(io.out, /listening on ws:\/\/127\.0\.0\.1:(\d+)/);
      expect(io.out()).not.toContain('generated');
      await expect(RawClient.connect(`ws://127.0.0.1:${port}/ws?token=from-file`)).rejects.toThrow('403');
      const c = await RawClient.connect(`ws://127.0.0.1:${port}/ws?token=from-env`);
      await c.close();
      p.kill('SIGINT');
      expect(await io.exit).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.runIf(process.platform === 'linux')(
    'runs the SQLite checkpoint thread --sqlite-checkpoint-nice below the process',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'aipd-nice-'));
      try {
        const p = aipd([
          'serve',
          '--port',
          '0',
          '--log-level',
          'silent',
          '--store',
          'sqlite',
          '--data-dir',
          dir,
          '--sqlite-checkpoint-nice',
          '6',
        ]);
        const io = collect(p);
        await waitForLine(io.out, /aipd listening on/);
        const base = processNice(p.pid!);
        const nice = threadNices(p.pid!);
        // the checkpoint thread alone, at the process's value plus 6; the event loop and the rest keep the process's
        const want = Math.min(19, base + 6);
        if (want !== base) expect(nice.filter((n) => n === want)).toHaveLength(1);
        expect(nice.filter((n) => n !== want && n !== base)).toEqual([]);
        p.kill('SIGTERM');
        expect(await io.exit).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it.each([
    [['serve', '--port', 'abc'], /^aipd: --port: expected an integer, got 'abc'\n$/],
    [['serve', '--port', '70000'], /^aipd: --port: .*\n$/],
    [['serve', '--bogus'], /^aipd: .*bogus.*\n$/],
    [['serve', '--log-level', 'loud'], /^aipd: --log-level: .*\n$/],
    [
      ['serve', '--config', '/nonexistent/aipd.json'],
      /^aipd: --config: cannot read '\/nonexistent\/aipd.json': ENOENT\n$/,
    ],
    [['serve', '--llm-model', 'm'], /^aipd: --llm-model: needs --llm-base-url .*\n$/],
    [['serve', '--llm-temperature', 'hot'], /^aipd: --llm-temperature: expected a number, got 'hot'\n$/],
    [
      ['serve', '--cluster', 'redis://127.0.0.1:6379'],
      /^aipd: --cluster: needs a shared session store \(--store postgres:\/\/…\); 'memory' is this node's alone\n$/,
    ],
    [['serve', '--cluster', 'http://127.0.0.1:6379'], /^aipd: --cluster: must be a redis:\/\/ URL\n$/],
    [
      [
        'serve',
        '--store',
        'postgres://127.0.0.1/x',
        '--cluster',
        'redis://h',
        '--cluster-heartbeat-ms',
        '6000',
      ],
      /^aipd: --cluster-heartbeat-ms: must be at most half of --cluster-lease-ms \(7500\)\n$/,
    ],
    [['serve', '--cluster-prefix', 'a b'], /^aipd: --cluster-prefix: must be 1–64 characters .*\n$/],
    [
      ['serve', '--sqlite-checkpoint-nice', '20'],
      /^aipd: --sqlite-checkpoint-nice: Too big: expected number to be <=19\n$/,
    ],
    [
      ['serve', '--sqlite-checkpoint-follow-ups', '101'],
      /^aipd: --sqlite-checkpoint-follow-ups: Too big: expected number to be <=100\n$/,
    ],
    [
      ['serve', '--sqlite-checkpoint-follow-up-ms', 'soon'],
      /^aipd: --sqlite-checkpoint-follow-up-ms: expected an integer, got 'soon'\n$/,
    ],
    [
      ['serve', '--sqlite-wal-max-bytes', '1000'],
      /^aipd: --sqlite-wal-max-bytes: Too small: expected number to be >=33554432\n$/,
    ],
    [['frobnicate'], /^aipd: unknown command 'frobnicate'/],
  ])('rejects %j with a one-line error and exit code 2', async (args, re) => {
    const io = collect(aipd(args));
    expect(await io.exit).toBe(2);
    expect(io.err()).toMatch(re);
  });
});

describe('aipd device (sample device)', () => {
  it('runs the example plan against a real server and prints a completed task_end', async () => {
    const server = aipd(['serve', '--port', '0', '--api-key', 'k', '--log-level', 'silent']);
    const s = collect(server);
    const [, port] = await waitForLine(s.out, /listening on ws:\/\/127\.0\.0\.1:(\d+)/);
    const plan = join(import.meta.dirname, '../../examples/hello-plan.json');
    const dev = collect(
      aipd([
        'device',
        '--url',
        `ws://127.0.0.1:${port}/ws`,
        '--token',
        'k',
        '--client-id',
        'demo',
        '--plan',
        plan,
      ]),
    );
    expect(await dev.exit).toBe(0);
    const printed = JSON.parse(dev.out().slice(dev.out().indexOf('{'))) as {
      status: string;
      result: { steps_completed: number; steps: { results: { result: unknown }[] }[] };
    };
    expect(printed.status).toBe('completed');
    expect(printed.result.steps_completed).toBe(3);
    expect(printed.result.steps[1]!.results[0]!.result).toEqual({ text: 'hello' });
    server.kill('SIGTERM');
    expect(await s.exit).toBe(0);
  });
});
