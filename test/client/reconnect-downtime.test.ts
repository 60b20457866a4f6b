/**
 * The client library reconnects for as long as its owner has not closed it: a device and a controller outlive a
 * server that is down for over a minute (the old default gave up after 10 tries, at about 61 s), re-register by
 * themselves when it is back on the same port, and run a task again.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { AipControllerClient, AipDeviceClient, RECONNECT_DEFAULTS } from '../../src/client/index.js';
import { serveProcess, type ServedProcess } from '../helpers/cli-process.js';
import { planRequest } from '../helpers/aip-server.js';

const KEY = 'downtime-key';
const DOWNTIME_MS = 62_000;
const procs: ChildProcessWithoutNullStreams[] = [];

afterEach(() => {
  for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

function serve(port: number): Promise<ServedProcess> {
  return serveProcess(port, KEY, { track: procs });
}

describe('reconnect after long downtime', () => {
  it('retries without a bound by default', () => {
    expect(RECONNECT_DEFAULTS.maxRetries).toBe(Number.POSITIVE_INFINITY);
  });

  it(
    'a device and a controller re-register by themselves after a minute of downtime and run a task',
    async () => {
      const first = await serve(0);
      const url = `ws://127.0.0.1:${first.port}/ws`;
      // Default retry count (unbounded); a short delay cap so the test sees the server soon after it is back.
      const reconnect = { initialDelayMs: 200, maxDelayMs: 2_000 };
      const device = new AipDeviceClient({
        url,
        token: KEY,
        clientId: 'dt-dev',
        reconnect,
        onCommand: () => [{ status: 'success', result: 'ok' }],
      });
      const controller = new AipControllerClient({
        url,
        token: KEY,
        clientId: 'dt-ctl',
        targetId: 'dt-dev',
        reconnect,
      });
      device.on('error', () => undefined);
      controller.on('error', () => undefined);
      try {
        await device.connect();
        await controller.connect();
        let attempts = 0;
        device.on('reconnecting', () => attempts++);
        const gaveUp: string[] = [];
        for (const c of [device, controller])
          c.on('disconnected', (i) => !i.willReconnect && gaveUp.push(i.reason));
        const registeredAgain = (c: AipDeviceClient | AipControllerClient) =>
          new Promise<boolean>((resolve) => c.on('registered', (info) => resolve(info.reconnected)));
        const back = Promise.all([registeredAgain(device), registeredAgain(controller)]);

        first.proc.kill('SIGKILL');
        await first.exit;
        await new Promise((r) => setTimeout(r, DOWNTIME_MS));
        expect(gaveUp).toEqual([]);
        expect(attempts).toBeGreaterThan(10);
        await serve(first.port);
        expect(await back).toEqual([true, true]);
        const end = await controller.runTask({ request: planRequest(2), sessionId: 'after-downtime' });
        expect(end).toMatchObject({ status: 'completed', session_id: 'after-downtime' });
      } finally {
        await device.close();
        await controller.close();
      }
    },
    DOWNTIME_MS + 40_000,
  );
});
