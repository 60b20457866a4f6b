/**
 * Integrity through a slow reader, against `aipd serve` in its own process so that its RSS means something.
 *
 * A controller writes 1 GiB into a channel to its device through the server; the device's reader is paced at a
 * tenth of the writer's unthrottled rate. That rate is measured first on a calibration channel in the same
 * session (96 MiB, reader draining as fast as it can; rate over the last 64 MiB). SHA-256 of what was written
 * and what was read must match, and the server's VmRSS (sampled every 50 ms from before the first channel
 * until the end) may grow by less than 64 MiB: the credit window, not the server, absorbs the speed difference.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChannelEndpoint } from '../../src/channel/endpoint.js';
import type { IncomingChannel } from '../../src/channel/mux.js';
import {
  drainAll,
  livePair,
  pacedDrain,
  rssOf,
  spawnAipd,
  type LivePair,
  type SpawnedAipd,
} from './helpers.js';

const KEY = 'e2e-slow-reader-key';
const MiB = 1024 * 1024;
const TOTAL = 1024 * MiB;
const CHUNK = MiB;
const WINDOW = MiB;

describe('a slow channel reader through aipd serve', () => {
  let server: SpawnedAipd;
  let pair: LivePair;
  const incoming: ((ep: ChannelEndpoint) => void)[] = [];
  const nextIncoming = (): Promise<ChannelEndpoint> => new Promise((r) => incoming.push(r));

  beforeAll(async () => {
    server = await spawnAipd(KEY);
    pair = await livePair({
      url: server.url,
      token: KEY,
      deviceId: 'slow-reader-dev',
      deviceWindow: WINDOW,
      deviceOnOpen: (inc: IncomingChannel) => incoming.shift()?.(inc.accept()),
    });
  }, 30_000);
  afterAll(async () => {
    await pair?.close();
    await server?.stop();
  });

  /** Writes `total` bytes of a non-repeating pattern; resolves with their SHA-256 and the writer's stats. */
  async function writeAll(
    ep: ChannelEndpoint,
    total: number,
    onProgress?: (sent: number) => void,
  ): Promise<string> {
    const pool = randomBytes(CHUNK + 64 * 1024);
    const h = createHash('sha256');
    for (let sent = 0, i = 0; sent < total; i++) {
      const off = (i * 4099) % (64 * 1024);
      const n = Math.min(CHUNK, total - sent);
      const chunk = pool.subarray(off, off + n);
      h.update(chunk);
      await ep.write(chunk);
      sent += n;
      onProgress?.(sent);
    }
    await ep.end();
    return h.digest('hex');
  }

  it('carries 1 GiB intact to a reader at a tenth of the writer speed, server RSS growing < 64 MiB', async () => {
    const rssBase = rssOf(server.pid);
    let rssMax = rssBase;
    const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssOf(server.pid))), 50);
    try {
      // 1. Calibration: the writer's unthrottled rate through the whole path.
      const calTotal = 96 * MiB;
      const calReader = nextIncoming();
      const calWriter = await pair.controllerMux.open({
        session_id: pair.sessionId,
        kind: 'stream',
        params: { purpose: 'calibration' },
      });
      const calEp = await calReader;
      let t32 = 0;
      const calDone = drainAll(calEp);
      const t0 = performance.now();
      await writeAll(calWriter, calTotal, (sent) => {
        if (sent === 32 * MiB) t32 = performance.now();
      });
      await calDone;
      const writerRate = (64 * MiB) / ((performance.now() - t32) / 1000);
      const readerRate = writerRate / 10;

      // 2. The 1 GiB transfer to a reader paced at a tenth of that.
      const readerP = nextIncoming();
      const writer = await pair.controllerMux.open({
        session_id: pair.sessionId,
        kind: 'stream',
        params: { purpose: '1GiB' },
      });
      const reader = await readerP;
      const got = createHash('sha256');
      let received = 0;
      const t1 = performance.now();
      const readDone = pacedDrain(
        () => reader.take(),
        readerRate,
        (c) => {
          got.update(c);
          received += c.byteLength;
        },
      );
      const sentDigest = await writeAll(writer, TOTAL);
      await readDone;
      const seconds = (performance.now() - t1) / 1000;
      clearInterval(sampler);
      rssMax = Math.max(rssMax, rssOf(server.pid));

      expect(received).toBe(TOTAL);
      expect(got.digest('hex')).toBe(sentDigest);
      expect(writer.stats().maxInFlight).toBeLessThanOrEqual(WINDOW);
      const growth = rssMax - rssBase;
      expect(growth).toBeLessThan(64 * MiB);
      console.log(
        `[slow-reader] writer ${(writerRate / MiB).toFixed(1)} MiB/s unthrottled (test total ${((performance.now() - t0) / 1000).toFixed(1)} s); ` +
          `reader paced at ${(readerRate / MiB).toFixed(1)} MiB/s, achieved ${(TOTAL / MiB / seconds).toFixed(1)} MiB/s over ${seconds.toFixed(1)} s; ` +
          `server RSS ${(rssBase / MiB).toFixed(1)} → max ${(rssMax / MiB).toFixed(1)} MiB (+${(growth / MiB).toFixed(1)} MiB); writer max in flight ${writer.stats().maxInFlight} B`,
      );
    } finally {
      clearInterval(sampler);
    }
  }, 240_000);
});
