/**
 * `--redis URL`: publishes session lifecycle events to the Redis channel `events:session` in the reference session
 * service's exact shapes, from the in-process feed of committed events:
 *
 * - `session.created` → `{"event_type":"session.created","aggregate_type":"session","aggregate_id":ID,
 *   "payload":{"agent_id","session_type","runtime_backend"}}`
 * - every event that carries `data.updates` (a PATCH or PUT, and a task's status, checkpoint and end) →
 *   `session.updated` with `payload: {"agent_id","status","updates":[changed field names]}`
 * - `session.deleted` → `payload: {"agent_id"}`
 *
 * Events with no record change (a task's command batches, `task.state`) are not published.
 *
 * Redis being down never crashes or blocks the server. ioredis's own offline queue is off (`enableOfflineQueue:
 * false`: it is unbounded); instead messages wait here in a bounded FIFO (`maxQueued`) while Redis is not ready or
 * while `maxInFlight` publishes await their replies, and are sent in order once it is. When the FIFO is full the
 * oldest message is dropped and counted; drops are logged (the first of an outage, then every 1000th) and the
 * total is logged when Redis is back. Each publish times out after `commandTimeoutMs`. Redis pub/sub is
 * at-most-once anyway: a subscriber that is away misses messages, and so may this publisher's during an outage.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import type { SessionEvent } from '../state/session-store.js';
import type { EventFeed } from './event-feed.js';

export const SESSION_EVENTS_CHANNEL = 'events:session';

export interface RedisPublisherOptions {
  readonly url: string;
  readonly channel?: string;
  /** Messages kept while Redis is unreachable or slow; the oldest are dropped past it. Default 10,000. */
  readonly maxQueued?: number;
  /** Publishes awaiting a reply at once. Default 1,000. */
  readonly maxInFlight?: number;
  /** A publish with no reply in this time fails (and counts as dropped). Default 5,000. */
  readonly commandTimeoutMs?: number;
  /** On close, time given to queued messages to go out. Default 1,000. */
  readonly closeTimeoutMs?: number;
}

/** The message the reference service publishes for `e`, or null when it publishes none. */
export function redisMessage(e: SessionEvent): string | null {
  const d = e.data;
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  let eventType: string;
  let payload: Record<string, unknown>;
  if (e.type === 'session.created') {
    eventType = 'session.created';
    payload = {
      agent_id: str(d.agent_id),
      session_type: str(d.session_type),
      runtime_backend: str(d.runtime_backend),
    };
  } else if (e.type === 'session.deleted') {
    eventType = 'session.deleted';
    payload = { agent_id: str(d.agent_id) };
  } else if (Array.isArray(d.updates)) {
    eventType = 'session.updated';
    payload = { agent_id: str(d.agent_id), status: str(d.status), updates: d.updates };
  } else return null;
  return JSON.stringify({
    event_type: eventType,
    aggregate_type: 'session',
    aggregate_id: e.session_id,
    payload,
  });
}

/** Drops between two warnings during one outage. */
const DROP_LOG_EVERY = 1000;

export class RedisPublisher {
  readonly channel: string;
  private readonly redis: Redis;
  private readonly queue: string[] = [];
  private head = 0;
  private inFlight = 0;
  private droppedTotal = 0;
  private droppedSinceReady = 0;
  private published = 0;
  private readonly unsubscribe: () => void;
  private closed = false;
  private wasReady = false;
  private errorLogged = false;
  private readonly maxQueued: number;
  private readonly maxInFlight: number;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(
    feed: EventFeed,
    private readonly opts: RedisPublisherOptions,
    private readonly log: Logger,
  ) {
    this.channel = opts.channel ?? SESSION_EVENTS_CHANNEL;
    this.maxQueued = opts.maxQueued ?? 10_000;
    this.maxInFlight = opts.maxInFlight ?? 1_000;
    this.redis = new Redis(opts.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: opts.commandTimeoutMs ?? 5_000,
      connectTimeout: 5_000,
      retryStrategy: (times) => Math.min(times * 200, 2_000),
      lazyConnect: false,
    });
    this.redis.on('ready', () => {
      if (this.droppedSinceReady > 0 || this.wasReady || this.errorLogged)
        this.log.info(
          { dropped: this.droppedSinceReady, queued: this.queued },
          'Redis reachable again; publishing session events',
        );
      else this.log.info({ channel: this.channel }, 'Redis connected; publishing session events');
      this.wasReady = true;
      this.errorLogged = false;
      this.droppedSinceReady = 0;
      this.pump();
    });
    this.redis.on('error', (err: Error) => {
      // ioredis emits this on every failed attempt while it reconnects: say it once per outage.
      if (this.errorLogged) return;
      this.errorLogged = true;
      this.log.warn(
        { err: err.message },
        'Redis unreachable: session events queue (bounded) until it is back',
      );
    });
    this.unsubscribe = feed.subscribe((e) => this.onEvent(e));
  }

  /** Messages waiting to be sent. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Messages dropped since start (queue full, or a publish that failed). */
  get dropped(): number {
    return this.droppedTotal;
  }

  /** Messages Redis acknowledged. */
  get sent(): number {
    return this.published;
  }

  /** Stops listening, gives queued messages up to `closeTimeoutMs` to go out, then disconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    if (this.redis.status === 'ready' && (this.queued > 0 || this.inFlight > 0)) {
      const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<void>(
        (resolve) => (timer = setTimeout(resolve, this.opts.closeTimeoutMs ?? 1_000)),
      );
      await Promise.race([idle, timeout]);
      clearTimeout(timer);
    }
    this.redis.disconnect();
    if (this.droppedTotal > 0) this.log.info({ dropped: this.droppedTotal }, 'Redis publisher closed');
  }

  private onEvent(e: SessionEvent): void {
    const msg = redisMessage(e);
    if (msg === null) return;
    if (this.queued >= this.maxQueued) {
      this.head++;
      this.drop();
    }
    this.queue.push(msg);
    this.pump();
  }

  private pump(): void {
    while (this.queued > 0 && this.inFlight < this.maxInFlight && this.redis.status === 'ready') {
      const msg = this.queue[this.head++]!;
      this.inFlight++;
      this.redis.publish(this.channel, msg).then(
        () => {
          this.published++;
          this.settled();
        },
        (err: unknown) => {
          this.drop(err);
          this.settled();
        },
      );
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    if (this.queued === 0 && this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private settled(): void {
    this.inFlight--;
    this.pump();
  }

  private drop(err?: unknown): void {
    this.droppedTotal++;
    this.droppedSinceReady++;
    if (this.droppedSinceReady === 1 || this.droppedSinceReady % DROP_LOG_EVERY === 0) {
      this.log.warn(
        {
          dropped: this.droppedSinceReady,
          total: this.droppedTotal,
          err: err instanceof Error ? err.message : undefined,
        },
        'Redis session event dropped',
      );
    }
  }
}
