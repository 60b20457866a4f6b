/**
 * A node that falls behind on the bus: its inbox is capped (`--cluster-inbox-max-len`), so what it did not read in
 * time is trimmed. That must never pass silently: when node A reads again it sees the gap in node B's sequence
 * numbers, tells its requester (an `error` naming the loss) and has B cancel the session, whose `task_end` says
 * why. Redis holds about the cap, not what was sent. Real servers on port 0, one Redis (fresh prefix), one
 * throwaway PostgreSQL database.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binaryMessageFrames } from '../../src/channel/aip-transfer.js';
import { clusterKeys } from '../../src/cluster/keys.js';
import { waitFor as waitUntil } from '../e2e/helpers.js';
import { planRequest, TEST_KEY } from '../helpers/aip-server.js';
import { connectRedis, waitFor } from '../helpers/redis.js';
import { inSession, Peer } from '../helpers/ws-peer.js';
import { InProcessNodes } from './in-process-nodes.js';

const MAX_LEN = 100;

describe('a node whose bus inbox overflowed', () => {
  let nodes: InProcessNodes;
  let redis: Redis;

  beforeAll(async () => {
    nodes = await InProcessNodes.create();
    redis = await connectRedis();
  });
  afterAll(async () => {
    await nodes.dispose();
    await redis.quit();
  });

  it('fails the sessions concerned loudly once it reads again, and Redis kept about the cap', async () => {
    const node = (nodeId: string) =>
      nodes.node(nodeId, { clusterInboxMaxLen: MAX_LEN, commandTimeoutMs: 60_000, drainTimeoutMs: 100 });
    const a = await node('ovf-a');
    const b = await node('ovf-b');
    const device = await Peer.connect(`ws://127.0.0.1:${b.port}/ws?token=${TEST_KEY}`);
    const galaxy = await Peer.connect(`ws://127.0.0.1:${a.port}/ws?token=${TEST_KEY}`);
    const SID = 'ovf-s';
    try {
      device.send({
        type: 'register',
        status: 'ok',
        client_type: 'device',
        client_id: 'ovf-dev',
        metadata: {},
      });
      await device.next('heartbeat', 0);
      await waitFor('node a to see ovf-dev', () => a.registry.get('ovf-dev') !== undefined);
      galaxy.send({
        type: 'register',
        status: 'ok',
        client_type: 'constellation',
        client_id: 'k@ovf',
        target_id: 'ovf-dev',
      });
      await galaxy.next('heartbeat', 0);
      galaxy.send({
        type: 'task',
        status: 'continue',
        client_type: 'constellation',
        client_id: 'k@ovf',
        target_id: 'ovf-dev',
        request: planRequest(1, 'hold'),
        session_id: SID,
      });
      await device.next('command', 0); // held: the session stays live on B
      await waitUntil(() => galaxy.texts('heartbeat').some((h) => h.session_id === SID), 10_000, 'the ACK');

      await a.cluster!.bus.suspendReading();
      const SENT = 600; // binary_data pairs: 1,200 frames for node a, far over the cap
      for (let i = 0; i < SENT; i++)
        for (const f of inSession(binaryMessageFrames(new Uint8Array([i & 0xff]), { i }), SID))
          device.sendFrame(f);
      const inbox = clusterKeys(nodes.prefix).inbox('ovf-a');
      await waitFor('the frames to reach the inbox', async () => {
        const info = (await redis.xinfo('STREAM', inbox)) as unknown[];
        return Number(info[info.indexOf('entries-added') + 1]) >= 2 * SENT;
      });
      expect(device.texts('error')).toEqual([]); // payloads 0xC1 included: a transfer's frame is never a channel's
      const kept = await redis.xlen(inbox);
      expect(kept).toBeLessThan(2 * SENT);
      expect(kept).toBeLessThanOrEqual(3 * MAX_LEN);

      a.cluster!.bus.resumeReading();
      await waitUntil(() => galaxy.texts('task_end').length === 1, 20_000, 'task_end on node a');
      const lost = galaxy.texts('error').find((e) => String(e.error).includes('trimmed'));
      expect(String(lost?.error)).toMatch(
        /^Cancelled: \d+ cluster message\(s\) from node ovf-b were trimmed/,
      );
      expect(galaxy.texts('task_end')[0]).toMatchObject({ status: 'failed', session_id: SID });
      expect(String(galaxy.texts('task_end')[0]!.error)).toContain('were trimmed before they were read');
      // Fewer binary frames arrived than were sent: the loss was real, and it was reported.
      expect(galaxy.frames.filter((f) => 'binary' in f).length).toBeLessThan(SENT);
      expect((await b.sessions.get(SID))?.status).toBe('cancelled');
    } finally {
      device.ws.terminate();
      galaxy.ws.terminate();
    }
  });
});
