/**
 * `--redis`: a real Redis subscriber on `events:session` checks the exact shapes of session.created, .updated and
 * .deleted; and a Redis that is down (or goes down) never blocks or crashes the server: messages wait in a bounded
 * queue, the oldest dropped and counted past it, and go out when Redis is back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { EventFeed } from '../../src/records/event-feed.js';
import { redisMessage, RedisPublisher, SESSION_EVENTS_CHANNEL } from '../../src/records/redis-publisher.js';
import type { SessionEvent } from '../../src/state/session-store.js';
import { client, eventually, sleep, StoreKit, type TestServer } from './helpers.js';

const REDIS_URL = process.env.AIPD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Subscribes to `events:session` and keeps the raw messages about ids starting with `prefix`. */
async function subscriber(
  url: string,
  prefix: string,
): Promise<{ messages: string[]; close(): Promise<void> }> {
  const sub = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: (n) => Math.min(n * 100, 500) });
  sub.on('error', () => undefined);
  const messages: string[] = [];
  sub.on('message', (_channel: string, message: string) => {
    if ((JSON.parse(message) as { aggregate_id: string }).aggregate_id.startsWith(prefix))
      messages.push(message);
  });
  await sub.subscribe(SESSION_EVENTS_CHANNEL);
  return {
    messages,
    close: async () => {
      sub.disconnect();
      await sleep(0);
    },
  };
}

describe('Redis publisher: the reference shapes on events:session, through a real subscriber', () => {
  const kit = new StoreKit('sqlite');
  beforeAll(() => kit.setup());
  afterAll(() => kit.teardown());
  afterEach(() => kit.closeAll());

  it('publishes session.created, session.updated (with the changed fields) and session.deleted exactly', async () => {
    const prefix = `r-${randomBytes(4).toString('hex')}-`;
    const sub = await subscriber(REDIS_URL, prefix);
    try {
      const server: TestServer = await kit.start({ redis: REDIS_URL });
      const api = client(server);
      const id = `${prefix}1`;
      expect(
        (
          await api.post('/sessions', {
            id,
            agent_id: 'agent-7',
            session_type: 'conversation',
            runtime_backend: 'local',
          })
        ).status,
      ).toBe(201);
      expect((await api.patch(`/sessions/${id}`, { status: 'paused', context: { a: 1 } })).status).toBe(200);
      expect(
        (await api.patch(`/sessions/${id}`, { checkpoint: { step: 2 }, runtime_metadata: { pod: 'p' } }))
          .status,
      ).toBe(200);
      expect((await api.put(`/sessions/${id}/context`, { b: 2 })).status).toBe(200);
      expect((await api.delete(`/sessions/${id}`)).status).toBe(204);
      await eventually(() => (sub.messages.length >= 5 ? true : undefined));
      expect(sub.messages).toEqual([
        `{"event_type":"session.created","aggregate_type":"session","aggregate_id":"${id}","payload":{"agent_id":"agent-7","session_type":"conversation","runtime_backend":"local"}}`,
        `{"event_type":"session.updated","aggregate_type":"session","aggregate_id":"${id}","payload":{"agent_id":"agent-7","status":"paused","updates":["status","context"]}}`,
        `{"event_type":"session.updated","aggregate_type":"session","aggregate_id":"${id}","payload":{"agent_id":"agent-7","status":"paused","updates":["checkpoint","runtime_metadata"]}}`,
        `{"event_type":"session.updated","aggregate_type":"session","aggregate_id":"${id}","payload":{"agent_id":"agent-7","status":"paused","updates":["context"]}}`,
        `{"event_type":"session.deleted","aggregate_type":"session","aggregate_id":"${id}","payload":{"agent_id":"agent-7"}}`,
      ]);
      // a bulk delete publishes one session.deleted per session
      await api.post('/sessions', { id: `${prefix}2`, agent_id: 'bulk', session_type: 't' });
      await api.post('/sessions', { id: `${prefix}3`, agent_id: 'bulk', session_type: 't' });
      expect((await api.delete('/sessions?agent_id=bulk')).json).toEqual({ deleted: 2 });
      await eventually(() => (sub.messages.length >= 9 ? true : undefined));
      expect(sub.messages.slice(5).map((m) => JSON.parse(m).event_type)).toEqual([
        'session.created',
        'session.created',
        'session.deleted',
        'session.deleted',
      ]);
    } finally {
      await sub.close();
    }
  });

  it('maps task events: updates become session.updated, command batches are not published', () => {
    const e = (type: string, data: Record<string, unknown>): SessionEvent => ({
      id: 1,
      session_id: 's',
      type,
      at: 'x',
      data,
    });
    expect(redisMessage(e('task.commands', { call_ids: ['c'], tools: ['t'] }))).toBeNull();
    expect(redisMessage(e('task.state', { agent_id: 'd', status: 'active', state: 'running' }))).toBeNull();
    expect(
      JSON.parse(
        redisMessage(
          e('task.ended', {
            agent_id: 'd',
            status: 'completed',
            updates: ['status', 'task'],
            task_status: 'completed',
          }),
        )!,
      ),
    ).toEqual({
      event_type: 'session.updated',
      aggregate_type: 'session',
      aggregate_id: 's',
      payload: { agent_id: 'd', status: 'completed', updates: ['status', 'task'] },
    });
    expect(
      JSON.parse(
        redisMessage(
          e('task.results', { agent_id: 'd', status: 'active', updates: ['checkpoint'], results: [] }),
        )!,
      ).payload,
    ).toEqual({
      agent_id: 'd',
      status: 'active',
      updates: ['checkpoint'],
    });
  });

  it('with Redis unreachable the REST API answers as usual and the server closes promptly', async () => {
    const server = await kit.start({ redis: `redis://127.0.0.1:${await closedPort()}` });
    const api = client(server);
    const t0 = Date.now();
    for (let i = 0; i < 20; i++)
      expect((await api.post('/sessions', { agent_id: 'a', session_type: 't' })).status).toBe(201);
    expect(Date.now() - t0).toBeLessThan(3_000);
    const t1 = Date.now();
    await server.close();
    expect(Date.now() - t1).toBeLessThan(3_000);
  });
});

describe('RedisPublisher offline behaviour (its own redis-server)', () => {
  let redis: ChildProcess | null = null;
  let port = 0;
  const startRedis = async () => {
    redis = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
      },
    );
    const probe = new Redis(`redis://127.0.0.1:${port}`, {
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    probe.on('error', () => undefined);
    await eventually(async () => {
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG' ? true : undefined;
      } catch {
        return undefined;
      }
    }, 10_000);
    probe.disconnect();
  };
  const stopRedis = async () => {
    const p = redis;
    redis = null;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  };
  beforeAll(async () => {
    port = await closedPort();
  });
  afterAll(stopRedis);

  const event = (id: number): SessionEvent => ({
    id,
    session_id: `s${id}`,
    type: 'session.created',
    at: 'x',
    data: { agent_id: 'a', session_type: 't', runtime_backend: 'unknown' },
  });

  it('keeps at most maxQueued messages while Redis is away (dropping the oldest), and sends them once it is back', async () => {
    const feed = new EventFeed();
    const pub = new RedisPublisher(feed, { url: `redis://127.0.0.1:${port}`, maxQueued: 5 }, silentLogger());
    try {
      for (let i = 1; i <= 8; i++) feed.publish(event(i)); // nothing listens on the port yet
      expect(pub.queued).toBe(5);
      expect(pub.dropped).toBe(3);
      await startRedis();
      const sub = await subscriber(`redis://127.0.0.1:${port}`, 's');
      // the publisher reconnects on its own; what it kept (the newest 5) goes out in order, then live messages
      await eventually(() => (pub.queued === 0 && pub.sent === 5 ? true : undefined), 10_000);
      feed.publish(event(9));
      await eventually(() => (sub.messages.some((m) => m.includes('"s9"')) ? true : undefined), 5_000);
      const got = sub.messages.map((m) => JSON.parse(m).aggregate_id);
      const kept = ['s4', 's5', 's6', 's7', 's8', 's9'];
      // the subscriber may have come before or after the reconnect: it saw a tail of what was kept
      expect(got).toEqual(kept.slice(kept.length - got.length));
      expect(pub.sent).toBe(6);

      // Redis goes away under it: publishes queue (bounded), then flow again when it is back
      await stopRedis();
      await sub.close();
      for (let i = 10; i <= 12; i++) feed.publish(event(i));
      await sleep(100);
      expect(pub.queued + pub.dropped).toBeGreaterThanOrEqual(3);
      await startRedis();
      const sub2 = await subscriber(`redis://127.0.0.1:${port}`, 's');
      feed.publish(event(13));
      await eventually(() => (sub2.messages.some((m) => m.includes('"s13"')) ? true : undefined), 10_000);
      await sub2.close();
    } finally {
      const t = Date.now();
      await pub.close();
      expect(Date.now() - t).toBeLessThan(2_000);
    }
  });
});

/** A port nothing listens on (bound then released). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}
