/**
 * EndedCheck's rounds against a real HTTP server on port 0 that plays `GET /sessions/{id}`: a round settles a kept
 * waiter from an ended record, a stop abandons the reads in flight, and a registration that comes while a round is
 * still finishing gets a round of its own.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { EndedCheck } from '../../src/client/ended-check.js';
import { TaskEndWaiters } from '../../src/client/pending.js';
import { until } from '../helpers/process.js';

let server: Server | null = null;
let check: EndedCheck | null = null;

afterEach(async () => {
  check?.stop();
  check = null;
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = null;
});

/** Serves `handle` on port 0; resolves the ws URL a client of it would have. */
async function serve(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  server = createServer(handle);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`;
}

/** Starts the check (as a registration does) for `waiters`, key `k`, always registered. */
function startCheck(url: string, waiters: TaskEndWaiters, everyMs: number, timeoutMs: number): EndedCheck {
  const c = (check = new EndedCheck({
    url,
    token: 'k',
    everyMs,
    timeoutMs,
    waiters,
    isOpen: () => true,
    log: pino({ enabled: false }),
  }));
  c.start();
  return c;
}

const ended = JSON.stringify({
  id: 's1',
  status: 'cancelled',
  updated_at: '2026-12-02T00:00:00.000Z',
  task: { task_name: 't', result: { steps_completed: 1 }, error: 'cancelled by the test' },
});

/** A waiter for `s1` kept across a drop, registered again (as the client does it). */
function keptWaiter(): { waiters: TaskEndWaiters; end: Promise<unknown> } {
  const waiters = new TaskEndWaiters();
  const end = waiters.wait('s1');
  waiters.detach(60_000, 'test drop');
  waiters.attach();
  return { waiters, end };
}

describe('EndedCheck', () => {
  it('settles a kept waiter from an ended record, sending the key', async () => {
    const keys: unknown[] = [];
    const url = await serve((req, res) => {
      keys.push(req.headers['x-api-key']);
      res.writeHead(req.url === '/sessions/s1' ? 200 : 404, { 'content-type': 'application/json' });
      res.end(req.url === '/sessions/s1' ? ended : '{}');
    });
    const { waiters, end } = keptWaiter();
    startCheck(url, waiters, 50, 1_000);
    expect(await end).toMatchObject({
      type: 'task_end',
      status: 'failed',
      session_id: 's1',
      task_name: 't',
      error: 'cancelled by the test',
      result: { steps_completed: 1 },
    });
    expect(keys).toEqual(['k']);
    expect(waiters.keptIds()).toEqual([]);
  });

  it('abandons the reads on stop, and runs a new round for a registration that came meanwhile', async () => {
    let requests = 0;
    const held: ServerResponse[] = [];
    const url = await serve((_req, res) => {
      requests++;
      if (requests === 1) return void held.push(res); // the first read never answers
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(ended);
    });
    const { waiters, end } = keptWaiter();
    // everyMs far off: only a round asked for by start() can read again within the test.
    const c = startCheck(url, waiters, 60_000, 60_000);
    await until(() => requests === 1, 'the first read');
    c.stop(); // a drop: the read in flight is abandoned
    c.start(); // registered again while that round is still winding down
    await end;
    expect(requests).toBe(2);
  });

  it('keeps the waiter when the record has not ended, and reads again every everyMs', async () => {
    let requests = 0;
    const url = await serve((_req, res) => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ id: 's1', status: requests < 3 ? 'crashed' : 'completed', task: { result: 'r' } }),
      );
    });
    const { waiters, end } = keptWaiter();
    startCheck(url, waiters, 30, 1_000);
    expect(await end).toMatchObject({ status: 'completed', result: 'r', error: null });
    expect(requests).toBe(3);
  });
});
