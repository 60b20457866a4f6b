/**
 * Real aipd cluster node processes for tests: `aipd serve --cluster` on loopback port 0, on one private
 * redis-server (so its memory can be read, and it is killed at the end), one throwaway PostgreSQL database and a
 * fresh key prefix. `dispose()` kills every node, deletes the prefix, stops Redis, drops the database and removes
 * the data directories, whatever state the test left them in.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { serveProcess, type ServedProcess } from '../helpers/cli-process.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { connectRedis, deletePrefix, PrivateRedis, testPrefix } from '../helpers/redis.js';

export const NODE_KEY = 'cluster-proc-key-0123456789';

export interface NodeProcess extends ServedProcess {
  readonly id: string;
  readonly wsUrl: string;
  readonly httpUrl: string;
}

export class NodeProcesses {
  readonly prefix = testPrefix();
  private readonly procs: ChildProcessWithoutNullStreams[] = [];
  private readonly dirs: string[] = [];
  private admin: Redis | null = null;

  private constructor(
    readonly redis: PrivateRedis,
    readonly db: TestDatabase,
  ) {}

  static async start(): Promise<NodeProcesses> {
    const redis = await PrivateRedis.start();
    try {
      return new NodeProcesses(redis, await createTestDatabase());
    } catch (err) {
      await redis.kill();
      throw err;
    }
  }

  /** A connection to the private Redis for the test's own reads. */
  async client(): Promise<Redis> {
    this.admin ??= await connectRedis(this.redis.url);
    return this.admin;
  }

  /** Starts `aipd serve --cluster … --node-id ID` and resolves once it listens. */
  async node(id: string, extra: string[] = []): Promise<NodeProcess> {
    const dataDir = mkdtempSync(join(tmpdir(), `aipd-node-${id}-`));
    this.dirs.push(dataDir);
    const served = await serveProcess(0, NODE_KEY, {
      extra: [
        '--host',
        '127.0.0.1',
        '--cluster',
        this.redis.url,
        '--cluster-prefix',
        this.prefix,
        '--store',
        this.db.url,
        '--node-id',
        id,
        '--data-dir',
        dataDir,
        ...extra,
      ],
      track: this.procs,
    });
    return {
      ...served,
      id,
      wsUrl: `ws://127.0.0.1:${served.port}/ws`,
      httpUrl: `http://127.0.0.1:${served.port}`,
    };
  }

  /** GET `path` on a node with the API key; the parsed JSON body and the status. */
  async get<T = unknown>(node: NodeProcess, path: string): Promise<{ status: number; body: T }> {
    const res = await fetch(`${node.httpUrl}${path}`, { headers: { 'X-API-Key': NODE_KEY } });
    return { status: res.status, body: (await res.json()) as T };
  }

  async dispose(): Promise<void> {
    const exits = this.procs.splice(0).map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await gone;
    });
    await Promise.all(exits);
    try {
      const admin = await this.client();
      await deletePrefix(admin, this.prefix);
      await admin.quit();
    } finally {
      this.admin = null;
      await this.redis.kill();
      await this.db.drop();
      for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    }
  }
}
