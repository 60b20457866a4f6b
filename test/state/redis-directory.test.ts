/**
 * The client directory on Redis: the shared conformance suite, then what only a cluster has — two directory
 * instances ("nodes") on one Redis, each with its own connections and lease, racing for ids, seeing each other's
 * clients, and losing a dead node's entries when its lease expires.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CloseCode } from '../../protocol/index.js';
import type { ClientDirectory } from '../../src/state/client-directory.js';
import { RedisClientDirectory } from '../../src/state/redis-client-directory.js';
import { RemoteClientLink, type RemoteFrame } from '../../src/state/redis/remote-link.js';
import { silentLogger } from '../../src/logger.js';
import { ClusterKit } from '../cluster/cluster-kit.js';
import { waitFor } from '../helpers/redis.js';
import { clientDirectorySuite, clientInfo, RecordingLink } from './directory-suite.js';

const kits = new WeakMap<ClientDirectory, ClusterKit>();
clientDirectorySuite('redis', {
  make: async () => {
    const kit = new ClusterKit();
    const { dir } = await kit.node('n1');
    kits.set(dir, kit);
    return dir;
  },
  dispose: (dir) => kits.get(dir)!.dispose(),
});

/** A link that also records how it was closed. */
class ClosingLink extends RecordingLink {
  closedWith: { code: number; reason: string } | null = null;
  override close(code?: number, reason?: string): void {
    this.closedWith = { code: code ?? 0, reason: reason ?? '' };
    super.close();
  }
}

describe('RedisClientDirectory across nodes', () => {
  let kit: ClusterKit;
  beforeEach(() => {
    kit = new ClusterKit();
  });
  afterEach(async () => {
    await kit.dispose();
  });

  it('refuses a duplicate on the other node and leaves the original registration and link untouched', async () => {
    const a = await kit.node('a');
    const b = await kit.node('b');
    const original = new RecordingLink('on-a');
    expect(await a.dir.register(clientInfo('dev-1'), original)).toBe(true);
    const dup = new RecordingLink('on-b');
    expect(await b.dir.register(clientInfo('dev-1', { platform: 'windows' }), dup)).toBe(false);
    expect(a.dir.link('dev-1')).toBe(original);
    expect(a.dir.get('dev-1')?.platform).toBe('linux');
    expect(original.closed).toBe(false);
    expect(b.dir.clientOf(dup)).toBeUndefined();
    const entries = await (await kit.redis()).hgetall(kit.keys.dir);
    expect(Object.keys(entries)).toEqual(['dev-1']);
    expect(JSON.parse(entries['dev-1']!)).toMatchObject({ n: 'a' });
  });

  it('lets exactly one of 1,000 concurrent registrations of one id, split over two nodes, win', async () => {
    const a = await kit.node('a');
    const b = await kit.node('b');
    const links = Array.from({ length: 1000 }, (_, i) => new RecordingLink(`c${i}`));
    const results = await Promise.all(
      links.map((l, i) => (i % 2 === 0 ? a.dir : b.dir).register(clientInfo('contested'), l)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    const i = results.indexOf(true);
    const [winner, loser] = i % 2 === 0 ? [a, b] : [b, a];
    expect(winner.dir.link('contested')).toBe(links[i]);
    expect(winner.dir.localCount()).toBe(1);
    expect(loser.dir.localCount()).toBe(0);
    await loser.dir.resync();
    expect(loser.dir.nodeOf('contested')).toBe(winner.id);
    expect(Object.keys(await (await kit.redis()).hgetall(kit.keys.dir))).toEqual(['contested']);
  });

  it("shows every node's clients in list, stats, get and all, and follows unregistrations", async () => {
    const a = await kit.node('a');
    const b = await kit.node('b');
    const da = new RecordingLink('da');
    await a.dir.register(clientInfo('dev-a'), da);
    await b.dir.register(clientInfo('dev-b'), new RecordingLink('db'));
    await a.dir.register(
      clientInfo('k@dev-b', { clientType: 'constellation', targetId: 'dev-b' }),
      new RecordingLink('ka'),
    );
    for (const n of [a, b]) await waitFor(`node ${n.id} to see 3 clients`, () => n.dir.stats().total === 3);
    for (const n of [a, b]) {
      expect(n.dir.list()).toEqual(['dev-a', 'dev-b', 'k@dev-b']);
      expect(n.dir.stats()).toEqual({ total: 3, device_clients: 2, constellation_clients: 1 });
      expect([...n.dir.all()].map((c) => c.clientId)).toEqual(['dev-a', 'dev-b', 'k@dev-b']);
    }
    expect(b.dir.get('k@dev-b')).toMatchObject({ clientType: 'constellation', targetId: 'dev-b' });
    expect(b.dir.nodeOf('dev-a')).toBe('a');
    expect(await a.dir.unregister('dev-a', da)).toBe(true);
    await waitFor('node b to drop dev-a', () => b.dir.get('dev-a') === undefined);
    expect(b.dir.list()).toEqual(['dev-b', 'k@dev-b']);
  });

  it('reaches a remote client through a proxy link that hands frames to the RemoteSender and closes with its entry', async () => {
    const frames: [string, string, RemoteFrame][] = [];
    const a = await kit.node('a');
    const b = await kit.node('b', {
      remoteSender: (node, client, _fence, frame) => {
        frames.push([node, client, frame]);
        return true;
      },
    });
    const da = new RecordingLink('da');
    await a.dir.register(clientInfo('dev-a'), da);
    await waitFor('node b to see dev-a', () => b.dir.get('dev-a') !== undefined);
    const proxy = b.dir.link('dev-a')!;
    expect(proxy).toBeInstanceOf(RemoteClientLink);
    expect(b.dir.link('dev-a')).toBe(proxy);
    expect(b.dir.get('dev-a')).toEqual({ ...clientInfo('dev-a'), conn: proxy });
    expect(b.dir.clientOf(proxy)?.clientId).toBe('dev-a');
    expect(proxy.closed).toBe(false);
    expect(proxy.send({ type: 'heartbeat', status: 'ok' })).toBe(true);
    expect(proxy.sendRaw('raw', false)).toBe(true);
    proxy.close(1000, 'bye');
    expect(frames).toEqual([
      ['a', 'dev-a', { kind: 'message', msg: { type: 'heartbeat', status: 'ok' } }],
      ['a', 'dev-a', { kind: 'raw', data: 'raw', isBinary: false }],
      ['a', 'dev-a', { kind: 'close', code: 1000, reason: 'bye' }],
    ]);
    expect(da.sent).toEqual([]);
    await a.dir.unregister('dev-a', da);
    await waitFor('the proxy to close', () => proxy.closed);
    expect(proxy.send({ type: 'heartbeat', status: 'ok' })).toBe(false);
    expect(b.dir.clientOf(proxy)).toBeUndefined();
    expect(frames).toHaveLength(3);
  });

  it('fails sends to another node while no bus is wired, instead of dropping them silently', async () => {
    const a = await kit.node('a');
    const b = await kit.node('b');
    await a.dir.register(clientInfo('dev-a'), new RecordingLink('da'));
    await waitFor('node b to see dev-a', () => b.dir.get('dev-a') !== undefined);
    expect(b.dir.link('dev-a')!.send({ type: 'heartbeat', status: 'ok' })).toBe(false);
  });

  it("treats a dead node's entries as absent once its lease expires, and its janitor sweep removes them", async () => {
    const a = await kit.node('a', { leaseMs: 1_000, heartbeatMs: 100 });
    // No periodic resync on b: the claim itself must see that node a is dead, with no janitor's help.
    const b = await kit.node('b', { resyncMs: 600_000 });
    await a.dir.register(clientInfo('dev-1'), new RecordingLink('a1'));
    await a.dir.register(clientInfo('dev-2'), new RecordingLink('a2'));
    await waitFor('node b to see both', () => b.dir.stats().total === 2);
    expect(await b.dir.register(clientInfo('dev-1'), new RecordingLink('early'))).toBe(false);
    a.lease.suspend(); // node a stops renewing, as if it had died
    const redis = await kit.redis();
    await waitFor("node a's lease to expire", async () => (await redis.exists(kit.keys.node('a'))) === 0);
    expect(await redis.hexists(kit.keys.dir, 'dev-2')).toBe(1);
    const b1 = new RecordingLink('b1');
    expect(await b.dir.register(clientInfo('dev-1'), b1)).toBe(true);
    expect(b.dir.link('dev-1')).toBe(b1);
    await b.dir.resync();
    expect(await redis.hexists(kit.keys.dir, 'dev-2')).toBe(0);
    expect(b.dir.get('dev-2')).toBeUndefined();
    expect(b.dir.list()).toEqual(['dev-1']);
  });

  it("unregisters only this registration: a fenced node's late unregister leaves the new owner's entry", async () => {
    const a = await kit.node('a', { leaseMs: 1_000, heartbeatMs: 100 });
    const b = await kit.node('b');
    const la = new RecordingLink('la');
    await a.dir.register(clientInfo('dev-1'), la);
    a.lease.suspend();
    const redis = await kit.redis();
    await waitFor("node a's lease to expire", async () => (await redis.exists(kit.keys.node('a'))) === 0);
    expect(await b.dir.register(clientInfo('dev-1'), new RecordingLink('lb'))).toBe(true);
    // Node a never heard it lost dev-1; its socket closes now and it unregisters.
    expect(await a.dir.unregister('dev-1', la)).toBe(true);
    expect(JSON.parse((await redis.hget(kit.keys.dir, 'dev-1'))!)).toMatchObject({ n: 'b' });
  });

  it("closes a fenced node's sockets, refuses its writes until it rejoins, and serves it again after", async () => {
    const a = await kit.node('a', { leaseMs: 1_000, heartbeatMs: 100 });
    const b = await kit.node('b');
    const links = [new ClosingLink('a1'), new ClosingLink('a2')];
    await a.dir.register(clientInfo('dev-1'), links[0]!);
    await a.dir.register(clientInfo('dev-2'), links[1]!);
    a.lease.suspend();
    const redis = await kit.redis();
    await waitFor("node a's lease to expire", async () => (await redis.exists(kit.keys.node('a'))) === 0);
    expect(await b.dir.register(clientInfo('dev-1'), new RecordingLink('b1'))).toBe(true);
    // Still asleep as far as it knows (no renewal yet), node a's claims are refused by Redis itself.
    expect(a.lease.state).toBe('live');
    await expect(a.dir.register(clientInfo('dev-9'), new RecordingLink('a9'))).rejects.toMatchObject({
      kind: 'CLUSTER_NODE_FENCED',
    });
    expect(await redis.hexists(kit.keys.dir, 'dev-9')).toBe(0);
    expect(await a.lease.resume()).toBe('fenced');
    for (const l of links) expect(l.closedWith?.code).toBe(CloseCode.GOING_AWAY);
    expect(a.dir.localCount()).toBe(0);
    await expect(a.dir.register(clientInfo('dev-3'), new RecordingLink('a3'))).rejects.toMatchObject({
      kind: 'CLUSTER_NODE_FENCED',
      code: 5100,
    });
    const before = a.lease.incarnation;
    await a.lease.join();
    expect(a.lease.incarnation).not.toBe(before);
    expect(await a.dir.register(clientInfo('dev-1'), new RecordingLink('again'))).toBe(false);
    expect(await a.dir.register(clientInfo('dev-2'), new RecordingLink('a2b'))).toBe(true);
  });

  it('releases an entry of its own incarnation that no local client holds (an unregister that missed Redis)', async () => {
    const a = await kit.node('a');
    // A second directory on node a's lease claims an id that a's own directory never had locally.
    const stray = new RedisClientDirectory({
      redis: a.redis,
      subscriber: await kit.redis(),
      keys: kit.keys,
      lease: a.lease,
      resyncMs: 60_000,
      log: silentLogger(),
    });
    expect(await stray.register(clientInfo('orphan'), new RecordingLink('s'))).toBe(true);
    const redis = await kit.redis();
    expect(await redis.hexists(kit.keys.dir, 'orphan')).toBe(1);
    await a.dir.resync();
    expect(await redis.hexists(kit.keys.dir, 'orphan')).toBe(0);
  });

  it('registers its live clients again after Redis lost its data; an id taken meanwhile closes as a duplicate', async () => {
    const a = await kit.node('a');
    const b = await kit.node('b');
    const keep = new ClosingLink('keep');
    const lose = new ClosingLink('lose');
    await a.dir.register(clientInfo('dev-keep'), keep);
    await a.dir.register(clientInfo('dev-lose'), lose);
    const redis = await kit.redis();
    for (const key of await redis.keys(`${kit.prefix}*`)) await redis.del(key);
    let resets = 0;
    a.lease.onReset(() => resets++);
    expect(await a.lease.renew()).toBe('reset');
    expect(resets).toBe(1);
    expect(await b.lease.renew()).toBe('reset');
    await b.lease.join();
    expect(await b.dir.register(clientInfo('dev-lose'), new RecordingLink('b'))).toBe(true);
    await a.lease.join();
    expect(await a.dir.reclaimLocal()).toBe(1);
    expect(a.dir.link('dev-keep')).toBe(keep);
    expect(keep.closedWith).toBeNull();
    expect(lose.closedWith?.code).toBe(CloseCode.DUPLICATE_CLIENT_ID);
    expect(a.dir.nodeOf('dev-lose')).toBe('b');
    const entry = JSON.parse((await redis.hget(kit.keys.dir, 'dev-keep'))!) as Record<string, string>;
    expect(entry).toMatchObject({ n: 'a', i: a.lease.incarnation });
    expect(JSON.parse(entry.c!)).toEqual(clientInfo('dev-keep'));
  });
});
