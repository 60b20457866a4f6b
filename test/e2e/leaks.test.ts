/**
 * No leaks: a channel reader killed mid-transfer (its socket terminated, no close handshake) leaves nothing
 * behind in the server: the router's stats go back to zero, the writer's channel is reset, the session ends,
 * and over several rounds the process memory (heap + ArrayBuffers, after a forced GC) returns near its baseline.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors } from '../../protocol/index.js';
import type { ChannelEndpoint } from '../../src/channel/endpoint.js';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { clientSocket, livePair, sleep, terminateClient, waitFor, type LivePair } from './helpers.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

const MiB = 1024 * 1024;
const WINDOW = MiB;
const CHUNK = new Uint8Array(256 * 1024).fill(3);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function settledMemory(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(20);
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

describe('a reader killed mid-transfer', () => {
  let server: Server;
  const pairs: LivePair[] = [];
  beforeEach(async () => {
    server = await startTestServer();
  });
  afterEach(async () => {
    await Promise.all(pairs.splice(0).map((p) => p.close()));
    await server.close();
  });

  /** One round: 8 MiB flow, the reader stops taking, its socket pauses, then it is killed. */
  async function round(n: number): Promise<{ bufferedAtKill: number; queuedAtKill: number }> {
    let readerTaken = 0;
    let stopReading = false;
    const pair = await livePair({
      url: `ws://127.0.0.1:${server.port}/ws`,
      token: TEST_KEY,
      deviceId: `leak-dev-${n}`,
      deviceWindow: WINDOW,
      deviceOnOpen: (inc) => {
        const ep = inc.accept();
        ep.onReadable(() => {
          while (!stopReading) {
            const c = ep.take();
            if (!c) return;
            readerTaken += c.byteLength;
          }
        });
      },
    });
    pairs.push(pair);
    const writer: ChannelEndpoint = await pair.controllerMux.open({
      session_id: pair.sessionId,
      kind: 'stream',
    });
    const writing = (async () => {
      for (;;) await writer.write(CHUNK);
    })();
    writing.catch(() => undefined);
    await waitFor(() => readerTaken >= 8 * MiB, 10_000, 'reader to take 8 MiB');
    stopReading = true;
    clientSocket(pair.device).pause();
    // The writer keeps going until its credit (the reader's window) is used up, then stalls.
    await waitFor(() => server.channels.stats().bufferedBytes === WINDOW, 5000, 'a full window in flight');
    const deviceConn = server.registry.get(`leak-dev-${n}`)!.conn;
    const queuedAtKill = deviceConn.bufferedBytes();
    const bufferedAtKill = server.channels.stats().bufferedBytes;

    terminateClient(pair.device);
    await expect(writing).rejects.toMatchObject({ code: Errors.CHANNEL_PEER_GONE.code });
    await waitFor(() => server.channels.stats().channels === 0, 5000, 'router to forget the channel');
    expect(server.channels.stats()).toEqual({ channels: 0, bufferedBytes: 0 });
    expect(writer.state).toBe('reset');
    expect(pair.controllerMux.size).toBe(0);
    await waitFor(() => server.tasks.live.size === 0, 5000, 'the session to end');
    expect(server.registry.get(`leak-dev-${n}`)).toBeUndefined();
    expect(deviceConn.bufferedBytes()).toBe(0);
    await pair.close();
    pairs.splice(pairs.indexOf(pair), 1);
    return { bufferedAtKill, queuedAtKill };
  }

  it('leaves no channel state or buffers behind, and memory returns near baseline over 5 rounds', async () => {
    await round(0); // warm-up: code paths, pools, caches
    const base = await settledMemory();
    const seen: { bufferedAtKill: number; queuedAtKill: number }[] = [];
    for (let i = 1; i <= 5; i++) seen.push(await round(i));
    const after = await settledMemory();
    for (const s of seen) expect(s.bufferedAtKill).toBe(WINDOW); // the kill really happened mid-transfer
    const growth = after - base;
    console.log(
      `[leaks] 5 kills with a full 1 MiB window in flight (device's server-side queue at kill: ${seen.map((s) => (s.queuedAtKill / 1024).toFixed(0)).join(', ')} KiB); ` +
        `heap+ArrayBuffers ${(base / MiB).toFixed(1)} → ${(after / MiB).toFixed(1)} MiB (${growth >= 0 ? '+' : ''}${(growth / MiB).toFixed(2)} MiB)`,
    );
    expect(growth).toBeLessThan(4 * MiB);
  }, 60_000);
});
