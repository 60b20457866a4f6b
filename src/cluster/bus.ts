/**
 * The cross-node bus: one Redis Stream inbox per node (`{p}inbox:<node>`), written with XADD and read by its
 * node alone with a blocking XREAD on a connection of its own.
 *
 * Why streams and not pub/sub: a stream keeps what was sent while the reader is away (a reconnect, a slow
 * node), so nothing is lost while Redis is up, which is the weak spot of PUB/SUB adapters.
 *
 * - Order: one queue per target node, written in order on one connection, read in order: frames for one client
 *   (so for one session) arrive in the order they were sent.
 * - Exactly once: each envelope carries a sequence number per (sender incarnation → target); the reader drops
 *   what it has applied already (an XADD retried after a lost reply) and reports a jump as a gap.
 * - Bounded: the sender's queues hold at most `maxQueuedBytes` (then `send` refuses); each inbox is capped at
 *   about `maxLen` entries (`MAXLEN ~`), and the reader trims what it has read (`XTRIM MINID`). An inbox that
 *   overflowed lost entries unread; the reader sees the gap in the sequence numbers and `onGap` fails the
 *   sessions concerned loudly.
 * - Redis down: queued envelopes wait (bounded) and are retried in order; `reachable` is false, so callers can
 *   refuse new cross-node work with a retryable error instead of queueing it.
 */
import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../logger.js';
import { decodeEnvelope, encodeEnvelope, type BusMessage, type Envelope } from './envelope.js';
import type { ClusterKeys } from './keys.js';
import type { NodeLease } from './node-lease.js';

export interface ClusterBusOptions {
  /** Commands (XADD, XTRIM, DEL): no offline queue. */
  readonly redis: Redis;
  /** A connection of its own for the blocking XREAD. */
  readonly reader: Redis;
  readonly keys: ClusterKeys;
  readonly lease: NodeLease;
  /** `clusterInboxMaxLen`: entries an inbox keeps at most (approximately) before the oldest are trimmed. */
  readonly maxLen: number;
  /** `clusterBusQueueBytes`: bytes this node may hold waiting to be written to Redis, over all targets. */
  readonly maxQueuedBytes: number;
  /** How long one XREAD blocks (ms). */
  readonly blockMs: number;
  readonly log: Logger;
}

/** What this node does with what arrives. */
export interface BusHandler {
  onMessage(env: Envelope): void;
  /** `missing` envelopes from `senderNode` were never read (trimmed unread). */
  onGap(senderNode: string, missing: number): void;
}

interface TargetQueue {
  readonly node: string;
  seq: number;
  incarnation: string;
  items: Buffer[];
  flushing: boolean;
}

/** Entries read per XREAD; envelopes written per pipeline. */
const BATCH = 256;
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 1_000;
const TRIM_EVERY_MS = 1_000;

export class ClusterBus {
  private readonly targets = new Map<string, TargetQueue>();
  private queuedBytes = 0;
  /** Last sequence number applied per sender incarnation (`node/incarnation`). */
  private readonly applied = new LRUCache<string, number>({ max: 4096 });
  private lastId = '0';
  private trimmedTo = '0';
  private lastTrim = 0;
  private running = false;
  private loop: Promise<void> | null = null;
  private handler: BusHandler | null = null;
  private paused = false;
  private onParked: (() => void) | null = null;
  private readonly log: Logger;

  constructor(private readonly opts: ClusterBusOptions) {
    this.log = opts.log.child({ component: 'bus' });
  }

  get nodeId(): string {
    return this.opts.lease.nodeId;
  }

  /** True while Redis takes commands: new cross-node work may start. */
  get reachable(): boolean {
    return this.opts.redis.status === 'ready' && this.opts.lease.state === 'live';
  }

  /** Bytes waiting to be written to Redis. */
  get queued(): number {
    return this.queuedBytes;
  }

  /** Starts reading this node's inbox. What it held from an earlier run of this node is for clients gone. */
  async start(handler: BusHandler): Promise<void> {
    await this.opts.redis.del(this.opts.keys.inbox(this.nodeId));
    this.handler = handler;
    this.running = true;
    this.loop = this.readLoop();
  }

  /** Stops reading; what is queued for other nodes gets up to `flushMs` to be written first. */
  async stop(flushMs = 2_000): Promise<void> {
    const deadline = Date.now() + flushMs;
    while (this.queuedBytes > 0 && Date.now() < deadline) await sleep(10);
    this.running = false;
    this.opts.reader.disconnect();
    await this.loop?.catch(() => undefined);
  }

  /**
   * Stops reading the inbox, as a node that falls behind would, until `resumeReading`; resolves once the read in
   * progress (at most `blockMs`) has returned. For tests of overflow.
   */
  suspendReading(): Promise<void> {
    this.paused = true;
    return new Promise((resolve) => (this.onParked = resolve));
  }

  resumeReading(): void {
    this.paused = false;
  }

  /**
   * Queues `m` for node `node`. False when this node's queues are full (Redis has been unreachable for long, or
   * the target reads too slowly); the caller treats the target as unreachable.
   */
  send(node: string, m: BusMessage): boolean {
    const { lease } = this.opts;
    let q = this.targets.get(node);
    if (!q) this.targets.set(node, (q = { node, seq: 0, incarnation: '', items: [], flushing: false }));
    if (q.incarnation !== lease.incarnation) {
      // A new incarnation counts from 1 again. What the old one queued still goes, in order, under its own
      // (sender, incarnation) numbering: after Redis lost its data the clients it was for are still here.
      q.seq = 0;
      q.incarnation = lease.incarnation;
    }
    const buf = encodeEnvelope({ s: lease.nodeId, i: lease.incarnation, q: q.seq + 1, m });
    if (this.queuedBytes + buf.length > this.opts.maxQueuedBytes) {
      this.log.warn({ target: node, queued: this.queuedBytes }, 'bus queue full: message refused');
      return false;
    }
    q.seq++;
    q.items.push(buf);
    this.queuedBytes += buf.length;
    if (!q.flushing) void this.flush(q);
    return true;
  }

  private async flush(q: TargetQueue): Promise<void> {
    q.flushing = true;
    const key = this.opts.keys.inbox(q.node);
    let delay = RETRY_MIN_MS;
    try {
      while (q.items.length > 0 && this.running) {
        const batch = q.items.slice(0, BATCH);
        const pipe = this.opts.redis.pipeline();
        for (const buf of batch) pipe.xadd(key, 'MAXLEN', '~', this.opts.maxLen, '*', 'm', buf);
        let written = 0;
        try {
          const res = (await pipe.exec()) ?? [];
          while (written < res.length && res[written]![0] === null) written++;
        } catch {
          written = 0;
        }
        // Whatever was written leaves the queue; the rest is retried in order (a duplicate is dropped by seq).
        const done = q.items.splice(0, written);
        for (const b of done) this.queuedBytes -= b.length;
        if (written < batch.length) {
          await sleep(delay);
          delay = Math.min(delay * 2, RETRY_MAX_MS);
        } else delay = RETRY_MIN_MS;
      }
    } finally {
      q.flushing = false;
    }
  }

  private async readLoop(): Promise<void> {
    const { reader, keys } = this.opts;
    const key = keys.inbox(this.nodeId);
    while (this.running) {
      if (this.paused) {
        this.onParked?.();
        this.onParked = null;
        await sleep(RETRY_MIN_MS);
        continue;
      }
      let res: [Buffer, [Buffer, Buffer[]][]][] | null;
      try {
        if (reader.status === 'wait' || reader.status === 'end') await reader.connect();
        res = await reader.xreadBuffer(
          'COUNT',
          BATCH,
          'BLOCK',
          this.opts.blockMs,
          'STREAMS',
          key,
          this.lastId,
        );
      } catch (err) {
        if (!this.running) return;
        this.log.debug({ err }, 'inbox read failed; retrying');
        await sleep(RETRY_MAX_MS / 4);
        continue;
      }
      for (const [, entries] of res ?? []) {
        for (const [id, fields] of entries) {
          this.lastId = id.toString();
          this.apply(fields[1]);
        }
      }
      await this.trim(key);
    }
  }

  private apply(raw: Buffer | undefined): void {
    const env = raw ? decodeEnvelope(raw) : null;
    if (!env) return void this.log.warn({ id: this.lastId }, 'unreadable bus entry skipped');
    const from = `${env.s}/${env.i}`;
    const last = this.applied.get(from);
    if (last !== undefined && env.q <= last) return; // applied already (a retried write)
    this.applied.set(from, env.q);
    if (last !== undefined && env.q > last + 1) {
      this.log.error({ sender: env.s, missing: env.q - last - 1 }, 'bus messages were trimmed unread');
      this.handler?.onGap(env.s, env.q - last - 1);
    }
    try {
      this.handler?.onMessage(env);
    } catch (err) {
      this.log.error({ err, type: env.m.t }, 'bus message handler failed');
    }
  }

  /** Drops what has been read, at most once a second. */
  private async trim(key: string): Promise<void> {
    const now = Date.now();
    if (this.lastId === this.trimmedTo || now - this.lastTrim < TRIM_EVERY_MS) return;
    this.lastTrim = now;
    try {
      await this.opts.redis.xtrim(key, 'MINID', this.lastId);
      this.trimmedTo = this.lastId;
    } catch {
      // Redis is away: the next pass trims.
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
