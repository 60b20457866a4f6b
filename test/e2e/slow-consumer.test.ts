/**
 * Slow consumers on data channels: a device whose socket is paused (it never reads) while a controller writes
 * into 12 channels towards it. Each writer is held back by credit: at most one window (1 MiB) in flight, its
 * writes pending, and the router never forwards more than 12 windows. The server's outbound queue for the
 * device goes over its budget (3 MiB; the kernel absorbs part of the 12 MiB) and the device is closed with
 * CloseCode.SLOW_CONSUMER (4008) after the slow-consumer timeout, while another client keeps getting prompt
 * heartbeat replies. Afterwards every channel is reset for the writer and the router holds nothing.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CloseCode, Errors } from '../../protocol/index.js';
import type { ChannelEndpoint } from '../../src/channel/endpoint.js';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { RawClient } from '../helpers/raw-client.js';
import { clientSocket, livePair, sleep, type LivePair } from './helpers.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

const MiB = 1024 * 1024;
const WINDOW = MiB;
const CHANNELS = 12;
const BUDGET = 3 * MiB;
const TIMEOUT_MS = 1500;
const CHUNK = new Uint8Array(64 * 1024).fill(9);

describe('a channel reader that never reads', () => {
  let server: Server;
  let pair: LivePair | null = null;
  let other: RawClient | null = null;
  beforeEach(async () => {
    server = await startTestServer({
      outboundBudgetBytes: BUDGET,
      slowConsumerTimeoutMs: TIMEOUT_MS,
      commandTimeoutMs: 60_000,
    });
  });
  afterEach(async () => {
    other?.ws.terminate();
    await pair?.close();
    await server.close();
  });

  it('holds the writers back by credit and closes the reader with 4008, the server staying responsive', async () => {
    pair = await livePair({
      url: `ws://127.0.0.1:${server.port}/ws`,
      token: TEST_KEY,
      deviceId: 'paused-dev',
      deviceWindow: WINDOW,
      deviceOnOpen: (inc) => void inc.accept(), // accepted, never read
    });
    other = await RawClient.connect(server.url);
    await other.register('healthy');
    let deviceClose: number | null = null;
    pair.device.on('disconnected', (info) => (deviceClose = info.code));
    const writers: ChannelEndpoint[] = [];
    for (let i = 0; i < CHANNELS; i++)
      writers.push(
        await pair.controllerMux.open({ session_id: pair.sessionId, kind: 'stream', params: { i } }),
      );

    clientSocket(pair.device).pause();
    const deviceConn = server.registry.get('paused-dev')!.conn;
    const writing = writers.map(async (ep) => {
      for (;;) await ep.write(CHUNK);
    });
    for (const w of writing) w.catch(() => undefined);

    let peakQueued = 0;
    let peakRouted = 0;
    let roundTrips = 0;
    let overAt: number | null = null;
    const t0 = Date.now();
    while (server.registry.get('paused-dev') && Date.now() - t0 < 15_000) {
      const q = deviceConn.bufferedBytes();
      peakQueued = Math.max(peakQueued, q);
      peakRouted = Math.max(peakRouted, server.channels.stats().bufferedBytes);
      if (overAt === null && q > BUDGET) overAt = Date.now();
      for (const ep of writers) expect(ep.stats().inFlight).toBeLessThanOrEqual(WINDOW);
      other.send({ type: 'heartbeat', status: 'ok' });
      await other.next((m) => m.type === 'heartbeat', 2000);
      roundTrips++;
      await sleep(20);
    }
    const closedAt = Date.now();

    expect(server.registry.get('paused-dev')).toBeUndefined();
    expect(overAt).not.toBeNull();
    // Credit, not the server, held the bytes back: no writer ever had more than its window in flight.
    for (const ep of writers) {
      expect(ep.stats().maxInFlight).toBeLessThanOrEqual(WINDOW);
      expect(ep.stats().maxInFlight).toBeGreaterThan(0);
    }
    expect(peakRouted).toBeLessThanOrEqual(CHANNELS * WINDOW);
    expect(peakQueued).toBeGreaterThan(BUDGET);
    expect(peakQueued).toBeLessThanOrEqual(CHANNELS * WINDOW + 64 * 1024);
    const closedAfter = closedAt - overAt!;
    expect(closedAfter).toBeGreaterThanOrEqual(TIMEOUT_MS / 2); // observed by polling, so a little late
    expect(closedAfter).toBeLessThan(TIMEOUT_MS + 3000);
    expect(roundTrips).toBeGreaterThan(5);

    // Every writer is told, the router forgets everything, the task fails for the controller.
    for (const w of writing) await expect(w).rejects.toMatchObject({ code: Errors.CHANNEL_PEER_GONE.code });
    expect(server.channels.stats()).toEqual({ channels: 0, bufferedBytes: 0 });
    const end = await pair.controller.waitTaskEnd(pair.sessionId, 5000);
    expect(end).toMatchObject({
      status: 'failed',
      error: "Task was cancelled because client 'paused-dev' could not keep up (slow consumer)",
    });
    clientSocket(pair.device).resume();
    for (let i = 0; i < 500 && deviceClose === null; i++) await sleep(20);
    expect(deviceClose).toBe(CloseCode.SLOW_CONSUMER);
    console.log(
      `[slow-consumer] ${CHANNELS} channels × ${WINDOW / MiB} MiB window: peak routed ${(peakRouted / MiB).toFixed(2)} MiB, ` +
        `peak server queue for the reader ${(peakQueued / MiB).toFixed(2)} MiB (budget ${BUDGET / MiB} MiB), closed ${closedAfter} ms after going over; ` +
        `${roundTrips} heartbeat round trips meanwhile`,
    );
  }, 30_000);
});
