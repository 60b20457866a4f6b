/**
 * Real aipd cluster nodes as child processes for failure tests: each `aipd serve --cluster … --store postgres://…`
 * on a loopback port of its own, sharing one Redis (a fresh prefix, or a private server) and one throwaway
 * database. `stopAll` kills what is left (SIGKILL) and is meant for teardown.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveProcess, type ServedProcess } from './cli-process.js';

export interface ClusterNodeProc extends ServedProcess {
  readonly nodeId: string;
  readonly http: string;
  readonly ws: string;
}

export class ClusterNodes {
  readonly procs: ChildProcessWithoutNullStreams[] = [];
  private readonly dirs: string[] = [];

  constructor(
    private readonly opts: {
      readonly redisUrl: string;
      readonly prefix: string;
      readonly storeUrl: string;
      readonly apiKey: string;
      /** More flags for every node (grace, lease…). */
      readonly extra?: string[];
    },
  ) {}

  /** Starts node `nodeId` on a free port (or `port`, to restart one in place). */
  async start(nodeId: string, port = 0, extra: string[] = []): Promise<ClusterNodeProc> {
    const dataDir = mkdtempSync(join(tmpdir(), `aipd-${nodeId}-`));
    this.dirs.push(dataDir);
    const { redisUrl, prefix, storeUrl, apiKey } = this.opts;
    const served = await serveProcess(port, apiKey, {
      extra: [
        '--cluster',
        redisUrl,
        '--cluster-prefix',
        prefix,
        '--store',
        storeUrl,
        '--node-id',
        nodeId,
        ...(this.opts.extra ?? []),
        ...extra,
      ],
      env: { AIPD_DATA_DIR: dataDir, AIPD_STORE: storeUrl },
      track: this.procs,
    });
    return {
      ...served,
      nodeId,
      http: `http://127.0.0.1:${served.port}`,
      ws: `ws://127.0.0.1:${served.port}/ws`,
    };
  }

  async stopAll(): Promise<void> {
    await Promise.all(
      this.procs.splice(0).map(async (p) => {
        if (p.exitCode !== null || p.signalCode !== null) return;
        const gone = new Promise((r) => p.once('exit', r));
        p.kill('SIGKILL');
        await gone;
      }),
    );
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

/** GET `path` on a node with the API key; the parsed JSON body (and the status). */
export async function getJson<T = Record<string, unknown>>(
  base: string,
  path: string,
  apiKey: string,
): Promise<{ status: number; body: T }> {
  const res = await fetch(base + path, { headers: { 'X-API-Key': apiKey } });
  return { status: res.status, body: (await res.json()) as T };
}
