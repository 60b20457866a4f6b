/**
 * Memory under hostile input, measured on a real `aipd serve` process (its VmRSS, sampled while the attack runs):
 * - a 100 MB frame of nested arrays is refused by the byte pre-scan before anything is parsed, and the server's
 *   RSS grows by less than twice the frame (before the pre-scan it cost over 5 GB);
 * - 100 connections without an API key each sending a 4 MB body leave RSS growth under 50 MB (the key is checked
 *   on the head; no body is read).
 */
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/raw-client.js';
import { rssOf, spawnAipd, type SpawnedAipd } from './helpers.js';

const KEY = 'hostile-memory-key';
let server: SpawnedAipd | null = null;

afterEach(async () => {
  await server?.stop();
  server = null;
});

/** Samples `pid`'s RSS every 10 ms while `work` runs; returns the peak. */
async function peakRss(pid: number, work: () => Promise<void>): Promise<number> {
  let peak = rssOf(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(pid));
    } catch {
      // the process may be gone at the very end
    }
  }, 10);
  try {
    await work();
    await new Promise((r) => setTimeout(r, 100));
    peak = Math.max(peak, rssOf(pid));
  } finally {
    clearInterval(timer);
  }
  return peak;
}

const MB = 1_000_000;

describe('memory under hostile input (real process)', () => {
  it('refuses a 100 MB deeply nested frame before parsing it, with RSS growth under 2x the frame', async () => {
    server = await spawnAipd(KEY);
    const c = await RawClient.connect(`${server.url}?token=${KEY}`);
    try {
      await c.register('deep-dev');
      const half = 50 * MB;
      const frame = Buffer.alloc(2 * half);
      frame.fill(0x5b, 0, half); // '['
      frame.fill(0x5d, half); // ']'
      const base = rssOf(server.pid);
      const peak = await peakRss(server.pid, async () => {
        c.ws.send(frame, { binary: false });
        const err = await c.next((m) => m.type === 'error', 60_000);
        expect(err.error).toBe('Message nesting exceeds the maximum depth of 128');
      });
      const growth = peak - base;
      console.log(
        `[deep frame] 100 MB nested frame: server RSS ${(base / MB).toFixed(0)} → peak ${(peak / MB).toFixed(0)} MB (+${(growth / MB).toFixed(0)} MB)`,
      );
      expect(growth).toBeLessThan(2 * frame.length);
      // The socket is kept, and the server still answers.
      c.send({ type: 'heartbeat', status: 'ok' });
      expect(await c.next((m) => m.type === 'heartbeat', 10_000, c.frames.length)).toMatchObject({
        status: 'ok',
      });
    } finally {
      await c.close();
    }
  }, 120_000);

  it('refuses a 46 MB frame of 16 million empty arrays before parsing it, with RSS growth under 2x the frame', async () => {
    server = await spawnAipd(KEY);
    const c = await RawClient.connect(`${server.url}?token=${KEY}`);
    try {
      await c.register('wide-dev');
      const head = Buffer.from('{"type":"heartbeat","status":"ok","x":[');
      const body = Buffer.alloc(16_000_000 * 3 - 1, '[],');
      const frame = Buffer.concat([head, body, Buffer.from(']}')]);
      const base = rssOf(server.pid);
      const peak = await peakRss(server.pid, async () => {
        c.ws.send(frame, { binary: false });
        const err = await c.next((m) => m.type === 'error', 60_000);
        expect(err.error).toBe('Message holds more than 100000 objects and arrays');
      });
      const growth = peak - base;
      console.log(
        `[wide frame] ${(frame.length / MB).toFixed(0)} MB of empty arrays: server RSS +${(growth / MB).toFixed(0)} MB`,
      );
      expect(growth).toBeLessThan(2 * frame.length);
    } finally {
      await c.close();
    }
  }, 120_000);

  it('keeps RSS growth under 50 MB while 100 unauthenticated clients send 4 MB bodies', async () => {
    server = await spawnAipd(KEY);
    const port = server.port;
    const body = Buffer.alloc(4 * 1024 * 1024 - 100 * 1024, 0x61);
    const base = rssOf(server.pid);
    const statuses: number[] = [];
    const peak = await peakRss(server.pid, async () => {
      await Promise.all(
        Array.from(
          { length: 100 },
          () =>
            new Promise<void>((resolve) => {
              const req = request(
                {
                  host: '127.0.0.1',
                  port,
                  method: 'POST',
                  path: '/api/dispatch',
                  headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
                },
                (res) => {
                  statuses.push(res.statusCode ?? 0);
                  res.resume();
                  res.on('end', () => resolve());
                },
              );
              req.on('error', () => resolve());
              req.end(body);
            }),
        ),
      );
    });
    const growth = peak - base;
    console.log(
      `[unauthenticated bodies] 100 x 3.9 MB: server RSS ${(base / MB).toFixed(0)} → peak ${(peak / MB).toFixed(0)} MB (+${(growth / MB).toFixed(1)} MB)`,
    );
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 422)).toBe(true);
    expect(growth).toBeLessThan(50 * MB);
  }, 60_000);
});
