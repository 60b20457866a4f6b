/**
 * Redis for tests: the shared server at AIPD_TEST_REDIS_URL (default redis://127.0.0.1:6379, as CI starts it),
 * a fresh key prefix per test so runs never collide, and cleanup that deletes every key under it. A test that
 * kills or restarts Redis must start a private redis-server of its own instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { Redis } from 'ioredis';

export const TEST_REDIS_URL = process.env.AIPD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** `aipd-test:<random>:`, unique per call. */
export function testPrefix(): string {
  return `aipd-test:${randomBytes(6).toString('hex')}:`;
}

/** A connection that is ready (it throws, saying so, when the server cannot be reached). */
export async function connectRedis(url: string = TEST_REDIS_URL): Promise<Redis> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new Error(
      `Redis is not reachable at ${url} (${(err as Error).message}): start it (redis-server --daemonize yes ` +
        '--bind 127.0.0.1 --port 6379 --save "" --appendonly no) or set AIPD_TEST_REDIS_URL.',
      { cause: err },
    );
  }
  return redis;
}

/** Deletes every key under `prefix`. */
export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

/** Polls `check` until it is true; fails naming `what` if it never is (a generous deadline, not a timing check). */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  maxMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A redis-server of the test's own on a free loopback port (no persistence), so it can be killed and restarted. */
export class PrivateRedis {
  private proc: ChildProcess | null = null;
  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateRedis> {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port: p } = srv.address() as AddressInfo;
        srv.close(() => resolve(p));
      });
    });
    const r = new PrivateRedis(port);
    await r.restart();
    return r;
  }

  /** Starts the server (again, empty) and waits until it answers. */
  async restart(): Promise<void> {
    await this.kill();
    this.proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    await waitFor(`redis-server on port ${this.port}`, async () => {
      const probe = new Redis(this.url, { lazyConnect: true, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        probe.disconnect();
      }
    });
  }

  /** SIGKILLs the server (always call it in teardown). */
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }
}
