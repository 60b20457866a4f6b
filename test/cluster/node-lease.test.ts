/**
 * Node liveness: the lease key, the heartbeat ZSET, renewal, and fencing — a node paused past its lease (its
 * renewal timer suspended, then resumed) reports fenced instead of renewing, and so does an incarnation whose
 * lease another incarnation of the same node id took.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FencedInfo } from '../../src/cluster/node-lease.js';
import { waitFor } from '../helpers/redis.js';
import { ClusterKit } from './cluster-kit.js';

describe('NodeLease', () => {
  let kit: ClusterKit;
  beforeEach(() => {
    kit = new ClusterKit();
  });
  afterEach(async () => {
    await kit.dispose();
  });

  it('holds node:<id> = incarnation with a TTL of the lease, scores the node, and renews it', async () => {
    const redis = await kit.redis();
    const lease = await kit.lease('n1', { leaseMs: 10_000 });
    expect(lease.state).toBe('idle');
    const inc = await lease.join();
    expect(lease.state).toBe('live');
    expect(await redis.get(kit.keys.node('n1'))).toBe(inc);
    const ttl = await redis.pttl(kit.keys.node('n1'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(10_000);
    expect(await redis.get(kit.keys.epoch)).toMatch(/^[0-9a-f]{16}$/);
    const first = Number(await redis.zscore(kit.keys.nodes, 'n1'));
    expect(first).toBeGreaterThan(0);
    await redis.pexpire(kit.keys.node('n1'), 5_000);
    expect(await lease.renew()).toBe('live');
    expect(await redis.pttl(kit.keys.node('n1'))).toBeGreaterThan(5_000);
    expect(Number(await redis.zscore(kit.keys.nodes, 'n1'))).toBeGreaterThanOrEqual(first);
    expect(await lease.nodes()).toEqual([
      { nodeId: 'n1', incarnation: inc, lastHeartbeatMs: expect.any(Number) as number },
    ]);
  });

  it('keeps the lease alive on its own heartbeat for longer than the lease', async () => {
    const redis = await kit.redis();
    const lease = await kit.lease('n1', { leaseMs: 1_500, heartbeatMs: 100 });
    const inc = await lease.join();
    const start = Number(await redis.zscore(kit.keys.nodes, 'n1'));
    // Wait (by Redis server time) for more than a whole lease to pass: only renewals can keep the key.
    await waitFor('two leases of heartbeats', async () => {
      const score = Number(await redis.zscore(kit.keys.nodes, 'n1'));
      return score - start > 3_000;
    });
    expect(await redis.get(kit.keys.node('n1'))).toBe(inc);
    expect(lease.state).toBe('live');
  });

  it('reports fenced, and does not renew, when it resumes after being paused past its lease', async () => {
    const redis = await kit.redis();
    const lease = await kit.lease('n1', { leaseMs: 500, heartbeatMs: 100 });
    const inc = await lease.join();
    const told: FencedInfo[] = [];
    lease.onFenced((info) => told.push(info));
    lease.suspend();
    await waitFor('the lease to expire', async () => (await redis.exists(kit.keys.node('n1'))) === 0);
    expect(await lease.resume()).toBe('fenced');
    expect(told).toEqual([{ nodeId: 'n1', incarnation: inc, heldBy: null }]);
    expect(await redis.exists(kit.keys.node('n1'))).toBe(0);
    expect(await lease.renew()).toBe('fenced');
    expect(told).toHaveLength(1);
    const again = await lease.join();
    expect(again).not.toBe(inc);
    expect(lease.state).toBe('live');
    expect(await redis.get(kit.keys.node('n1'))).toBe(again);
  });

  it('fences an incarnation whose lease a newer incarnation of the same node took', async () => {
    const old = await kit.lease('n1');
    const oldInc = await old.join();
    const told: FencedInfo[] = [];
    old.onFenced((info) => told.push(info));
    const newer = await kit.lease('n1');
    const newInc = await newer.join();
    expect(await old.renew()).toBe('fenced');
    expect(told).toEqual([{ nodeId: 'n1', incarnation: oldInc, heldBy: newInc }]);
    expect(await newer.renew()).toBe('live');
    await old.leave();
    expect(await (await kit.redis()).get(kit.keys.node('n1'))).toBe(newInc);
  });

  it('reports reset, not fenced, when Redis lost the epoch (its data), and joins again', async () => {
    const redis = await kit.redis();
    const lease = await kit.lease('n1');
    await lease.join();
    let fenced = 0;
    let resets = 0;
    lease.onFenced(() => fenced++);
    lease.onReset(() => resets++);
    await redis.del(kit.keys.epoch, kit.keys.node('n1'), kit.keys.nodes);
    expect(await lease.renew()).toBe('reset');
    expect([fenced, resets]).toEqual([0, 1]);
    await lease.join();
    expect(await lease.renew()).toBe('live');
  });

  it('leaves: drops its lease and heartbeat at once, and lists dead nodes with no holder', async () => {
    const redis = await kit.redis();
    const a = await kit.lease('a');
    const b = await kit.lease('b', { leaseMs: 500, heartbeatMs: 100 });
    await a.join();
    await b.join();
    b.suspend();
    await waitFor("b's lease to expire", async () => (await redis.exists(kit.keys.node('b'))) === 0);
    const nodes = await a.nodes();
    expect(nodes.map((n) => [n.nodeId, n.incarnation === null])).toEqual(
      expect.arrayContaining([
        ['a', false],
        ['b', true],
      ]),
    );
    await a.leave();
    expect(a.state).toBe('idle');
    expect(await redis.exists(kit.keys.node('a'))).toBe(0);
    expect(await redis.zscore(kit.keys.nodes, 'a')).toBeNull();
  });
});
