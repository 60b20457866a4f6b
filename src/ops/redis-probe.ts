/**
 * Cluster only: a probe of the cluster's Redis on two connections of its own. Every `intervalMs` it publishes its
 * send time on a channel of its own under the cluster prefix and notes how long the message took to come back
 * through pub/sub (the bus lag the metrics show), and `/readyz` asks it whether Redis answers a PING.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';

export class RedisProbe {
  private readonly commands: Redis;
  private readonly subscriber: Redis;
  private readonly channel: string;
  private readonly timer: NodeJS.Timeout;
  private lagSec: number | null = null;

  constructor(url: string, prefix: string, nodeId: string, intervalMs: number, log: Logger) {
    const opts = { lazyConnect: false, maxRetriesPerRequest: 1, enableOfflineQueue: false };
    this.commands = new Redis(url, opts);
    this.subscriber = new Redis(url, opts);
    for (const c of [this.commands, this.subscriber])
      c.on('error', (err: Error) => log.debug({ err: err.message }, 'redis probe connection error'));
    this.channel = `${prefix}ops:probe:${nodeId}`;
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      const sent = Number(message);
      if (Number.isFinite(sent)) this.lagSec = Math.max(0, Date.now() - sent) / 1000;
    });
    this.subscriber.subscribe(this.channel).catch(() => undefined);
    this.timer = setInterval(() => {
      this.commands.publish(this.channel, String(Date.now())).catch(() => undefined);
    }, intervalMs);
    this.timer.unref();
  }

  /** The last measured pub/sub lag in seconds, or null before the first probe came back. */
  lag(): number | null {
    return this.lagSec;
  }

  /** Whether Redis answered a PING within `timeoutMs`. */
  async reachable(timeoutMs: number): Promise<boolean> {
    return withTimeout(
      this.commands.ping().then((r) => r === 'PONG'),
      timeoutMs,
    );
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.commands.disconnect();
    this.subscriber.disconnect();
    await Promise.resolve();
  }
}

/** `p`'s answer, or false when it fails or takes longer than `ms`. */
export function withTimeout(p: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return Promise.race([p.catch(() => false), late]).finally(() => clearTimeout(timer));
}
