/**
 * Fairness: 100 channels run at once through one aipd (two live sessions of 50 channels each, the router's
 * default cap being 64 per connection). Every writer pushes 64 KiB chunks as fast as its credit allows and
 * every reader drains at once; after a warm-up, the bytes each channel delivered over a fixed window must be
 * within ±20% of the mean.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChannelEndpoint } from '../../src/channel/endpoint.js';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { drainAll, livePair, sleep, waitFor, type LivePair } from './helpers.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

const PER_SESSION = 50;
const CHUNK = new Uint8Array(64 * 1024).fill(7);

describe('channel fairness', () => {
  let server: Server;
  const pairs: LivePair[] = [];
  beforeEach(async () => {
    server = await startTestServer({ maxChannelsPerSession: 64 }); // 50 channels in each session (default 32)
  });
  afterEach(async () => {
    await Promise.all(pairs.splice(0).map((p) => p.close()));
    await server.close();
  });

  it('gives each of 100 concurrent channels a throughput share within ±20% of the mean', async () => {
    const delivered = new Map<string, number>();
    const drains: Promise<number>[] = [];
    for (const id of ['fair-a', 'fair-b']) {
      pairs.push(
        await livePair({
          url: `ws://127.0.0.1:${server.port}/ws`,
          token: TEST_KEY,
          deviceId: id,
          deviceOnOpen: (inc) => {
            const tag = String(inc.params.tag);
            delivered.set(tag, 0);
            const ep = inc.accept();
            drains.push(
              drainAll(ep, (c) => delivered.set(tag, delivered.get(tag)! + c.byteLength)).then(async (n) => {
                await ep.end();
                return n;
              }),
            );
          },
        }),
      );
    }
    const writers: ChannelEndpoint[] = [];
    for (const p of pairs)
      for (let i = 0; i < PER_SESSION; i++)
        writers.push(
          await p.controllerMux.open({
            session_id: p.sessionId,
            kind: 'stream',
            params: { tag: `${p.sessionId}#${i}` },
          }),
        );
    expect(server.channels.stats().channels).toBe(100);

    let running = true;
    const loops = writers.map(async (ep) => {
      while (running) await ep.write(CHUNK);
      await ep.end();
    });
    await sleep(1000); // warm-up
    const start = new Map(delivered);
    await sleep(2000);
    const shares = [...delivered].map(([tag, n]) => n - start.get(tag)!);
    running = false;
    await Promise.all(loops);
    await Promise.all(drains);

    expect(shares).toHaveLength(100);
    const mean = shares.reduce((a, b) => a + b, 0) / shares.length;
    const min = Math.min(...shares);
    const max = Math.max(...shares);
    console.log(
      `[fairness] 100 channels, 2 s window: mean ${(mean / 1024).toFixed(0)} KiB/channel (${((mean * 100) / 2 / 1024 / 1024).toFixed(1)} MiB/s total), ` +
        `min ${((min / mean - 1) * 100).toFixed(1)}%, max +${((max / mean - 1) * 100).toFixed(1)}% of the mean`,
    );
    expect(mean).toBeGreaterThan(0);
    for (const s of shares) {
      expect(s).toBeGreaterThanOrEqual(mean * 0.8);
      expect(s).toBeLessThanOrEqual(mean * 1.2);
    }
    // Both directions FINished: the router forgets every channel while the sessions stay live.
    await waitFor(() => server.channels.stats().channels === 0, 5000, 'all channels closed');
    expect(server.channels.stats()).toEqual({ channels: 0, bufferedBytes: 0 });
    expect(server.tasks.live.size).toBe(2);
  }, 30_000);
});
