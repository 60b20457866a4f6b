import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { AipLoad, planRequest } from '../../src/cli/loadtest-core.js';
import { LatencyHistogram } from '../../src/cli/loadtest-hist.js';
import { RawWs } from '../../src/cli/loadtest-ws.js';
import { parseLoadtestArgs, summaryTable } from '../../src/cli/loadtest.js';
import { startServer, type RunningServer } from '../../src/app/server.js';

describe('parseLoadtestArgs', () => {
  it('applies defaults and reads the token from the URL', () => {
    const r = parseLoadtestArgs(['--url', 'ws://127.0.0.1:5123/ws?token=abc']);
    expect(r).toEqual({
      ok: true,
      options: {
        host: '127.0.0.1',
        port: 5123,
        path: '/ws',
        token: 'abc',
        devices: 10,
        steps: 100,
        durationS: 10,
        codec: 'json',
      },
    });
  });

  it.each([
    [['--devices', '3'], '--url'],
    [['--url', 'wss://h:1/ws'], '--url'],
    [['--url', 'ws://h:1/ws', '--devices', 'x'], '--devices'],
    [['--url', 'ws://h:1/ws', '--devices', '0'], '--devices'],
    [['--url', 'ws://h:1/ws', '--steps', '-1'], '--steps'],
    [['--url', 'ws://h:1/ws', '--duration', '1.5'], '--duration'],
    [['--url', 'ws://h:1/ws', '--codec', 'cbor'], '--codec'],
    [['--url', 'ws://h:1/ws', '--frobnicate'], '--frobnicate'],
  ])('rejects %j naming %s', (argv, flag) => {
    const r = parseLoadtestArgs(argv);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toContain(flag);
      expect(r.error).not.toContain('\n');
    }
  });
});

describe('LatencyHistogram', () => {
  it('reports percentiles within the bucket resolution and merges across instances', () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    for (let us = 1; us <= 1000; us++) (us % 2 ? a : b).record(us * 10);
    const m = LatencyHistogram.fromJSON(JSON.parse(JSON.stringify(a.toJSON())));
    m.merge(b);
    expect(m.count).toBe(1000);
    expect(m.percentile(0.5)).toBeGreaterThan(5000 * 0.98);
    expect(m.percentile(0.5)).toBeLessThan(5000 * 1.02);
    expect(m.percentile(0.99)).toBeGreaterThan(9900 * 0.98);
    expect(m.percentile(1)).toBe(10_000);
    expect(m.maxUs).toBe(10_000);
  });
});

describe('RawWs', () => {
  let wss: WebSocketServer | null = null;
  afterEach(async () => {
    await new Promise<void>((r) => (wss ? wss.close(() => r()) : r()));
    wss = null;
  });

  it('exchanges text and binary frames (small and 64 KiB) with a ws server', async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    wss.on('connection', (s) => s.on('message', (d, isBinary) => s.send(d, { binary: isBinary })));
    await new Promise<void>((r) => wss!.once('listening', () => r()));
    const port = (wss.address() as AddressInfo).port;
    const ws = await RawWs.connect({ host: '127.0.0.1', port, path: '/' });
    const got: [string | number, boolean][] = [];
    const done = new Promise<void>((resolve) => {
      ws.onMessage = (data, isBinary) => {
        got.push([typeof data === 'string' ? data : data.length, isBinary]);
        if (got.length === 3) resolve();
      };
    });
    ws.send('héllo', false);
    ws.send(new Uint8Array(65_536).fill(7), true);
    ws.send('x'.repeat(300), false);
    await done;
    expect(got).toEqual([
      ['héllo', false],
      [65_536, true],
      ['x'.repeat(300), false],
    ]);
    ws.close();
  });
});

const memoryServer = (): Promise<RunningServer> =>
  startServer({ port: 0, host: '127.0.0.1', apiKey: 'k', logLevel: 'silent', store: 'memory' });

describe('AipLoad against aipd', () => {
  let server: RunningServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  it.each(['json', 'msgpack'] as const)(
    'runs inline-plan tasks over %s and counts round trips',
    async (codec) => {
      server = await memoryServer();
      const load = new AipLoad({
        host: '127.0.0.1',
        port: server.port,
        path: '/ws',
        token: 'k',
        devices: 2,
        steps: 5,
        codec,
        idPrefix: `t-${codec}-`,
      });
      await load.connectAll();
      expect(load.connected).toBe(2);
      load.startTasks();
      const deadline = Date.now() + 5000;
      while (load.snapshot().tasks_completed < 4 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      load.stop();
      const s = load.snapshot();
      expect(s.errors).toBe(0);
      expect(s.tasks_completed).toBeGreaterThanOrEqual(4);
      expect(s.round_trips).toBeGreaterThanOrEqual(20);
      expect(load.hist.count).toBeGreaterThan(0);
      const table = summaryTable(
        {
          host: '127.0.0.1',
          port: server.port,
          path: '/ws',
          token: 'k',
          devices: 2,
          steps: 5,
          durationS: 1,
          codec,
        },
        s,
        load.hist,
      );
      expect(table).toMatch(/\| tasks completed +\| \d+ \(failed 0, 5 steps each\) \|/);
    },
  );

  it('rate-limited mode answers commands at the given rate in total and measures frame sizes', async () => {
    server = await memoryServer();
    const load = new AipLoad({
      host: '127.0.0.1',
      port: server.port,
      path: '/ws',
      token: 'k',
      devices: 4,
      steps: 1000,
      codec: 'json',
      idPrefix: 'rate-',
      rate: 200,
    });
    await load.connectAll();
    load.startTasks();
    await new Promise((r) => setTimeout(r, 300));
    load.resetStats();
    await new Promise((r) => setTimeout(r, 1000));
    const s = load.snapshot();
    load.stop();
    expect(s.errors).toBe(0);
    // 200/s for about a second; unpaced, 4 devices on loopback do thousands
    expect(s.round_trips).toBeGreaterThan(120);
    expect(s.round_trips).toBeLessThan(260);
    // wire sizes: a masked command_results text frame out, an unmasked command in, and the same as JSON
    expect(s.frame_out_bytes).toBeGreaterThan(150);
    expect(s.frame_in_bytes).toBeGreaterThan(150);
    expect(s.frame_out_json_bytes).toBe(s.frame_out_bytes);
  });

  it('reports a refused token as a registration failure, not a hang', async () => {
    server = await memoryServer();
    const load = new AipLoad({
      host: '127.0.0.1',
      port: server.port,
      path: '/ws',
      token: 'wrong',
      devices: 1,
      steps: 1,
      codec: 'json',
      idPrefix: 'bad-',
    });
    await load.connectAll();
    expect(load.connected).toBe(0);
    expect(load.snapshot().first_error).toMatch(/403|refused/);
    load.stop();
  });

  it('builds the inline plan the plan agent expects', () => {
    const plan = JSON.parse(planRequest(2)) as {
      task: string;
      steps: { actions: { tool_name: string }[] }[];
    };
    expect(plan.task).toBe('bench');
    expect(plan.steps).toHaveLength(2);
    expect(plan.steps[1]!.actions[0]!.tool_name).toBe('noop');
  });
});
