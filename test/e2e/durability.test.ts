/**
 * Durability with a real process: concurrent REST writers create and patch sessions on `aipd serve` (SQLite, and
 * PostgreSQL), the server is killed with SIGKILL at a random moment and restarted, and every acknowledged write is
 * there with its exact content. A write that was in flight at the kill may or may not have landed: the record is
 * then either its last acknowledged state or that write's.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { serveProcess, type ServedProcess } from '../helpers/cli-process.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';

const KEY = 'durability-key';
const WRITERS = 6;
const procs: ChildProcessWithoutNullStreams[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function serve(port: number, env: Record<string, string>): Promise<ServedProcess> {
  return serveProcess(port, KEY, { env, track: procs });
}

type Shape = { context: unknown; checkpoint: unknown; status: string; agent_id: string };
const shape = (s: Record<string, unknown>): Shape => ({
  context: s.context,
  checkpoint: s.checkpoint,
  status: s.status as string,
  agent_id: s.agent_id as string,
});

/** One writer: creates sessions and patches them until the server dies; returns what was acknowledged. */
async function writer(
  base: string,
  n: number,
  acked: Map<string, Shape>,
  inFlight: Map<string, Shape[]>,
): Promise<number> {
  const headers = { 'x-api-key': KEY, 'content-type': 'application/json' };
  let writes = 0;
  for (let i = 0; ; i++) {
    const id = `w${n}-s${i}`;
    const body = {
      id,
      agent_id: `agent-${n}`,
      session_type: 'durability',
      context: { writer: n, i, list: [i, 'x'] },
    };
    const guess: Shape = {
      context: body.context,
      checkpoint: null,
      status: 'active',
      agent_id: body.agent_id,
    };
    inFlight.set(id, [guess]);
    try {
      const res = await fetch(`${base}/sessions`, { method: 'POST', headers, body: JSON.stringify(body) });
      if (res.status !== 201) throw new Error(`create answered ${res.status}`);
      acked.set(id, shape((await res.json()) as Record<string, unknown>));
      inFlight.delete(id);
      writes++;
      for (let k = 1; k <= 3; k++) {
        const patch = {
          context: { k, list: null, [`step${k}`]: 'y'.repeat(k * 10) },
          checkpoint: { step: k, data: [k, { n }] },
        };
        const prev = acked.get(id)!;
        const ctx = { ...(prev.context as Record<string, unknown>) };
        delete ctx.list;
        inFlight.set(id, [
          { ...prev, context: { ...ctx, k, [`step${k}`]: 'y'.repeat(k * 10) }, checkpoint: patch.checkpoint },
        ]);
        const r = await fetch(`${base}/sessions/${id}`, {
          method: 'PATCH',
          headers,
          body: JSON.stringify(patch),
        });
        if (r.status !== 200) throw new Error(`patch answered ${r.status}`);
        acked.set(id, shape((await r.json()) as Record<string, unknown>));
        inFlight.delete(id);
        writes++;
      }
    } catch {
      return writes; // the server died: what is acknowledged is in `acked`, the write in flight in `inFlight`
    }
  }
}

async function killAndCheck(env: Record<string, string>): Promise<void> {
  const first = await serve(0, env);
  const base = `http://127.0.0.1:${first.port}`;
  const acked = new Map<string, Shape>();
  const inFlight = new Map<string, Shape[]>();
  const writers = Array.from({ length: WRITERS }, (_, n) => writer(base, n, acked, inFlight));
  await new Promise((r) => setTimeout(r, 400 + Math.random() * 1200));
  first.proc.kill('SIGKILL');
  await first.exit;
  const writes = (await Promise.all(writers)).reduce((a, b) => a + b, 0);
  expect(writes).toBeGreaterThan(20);

  const second = await serve(first.port, env);
  const headers = { 'x-api-key': KEY };
  let exact = 0;
  for (const [id, want] of acked) {
    const res = await fetch(`http://127.0.0.1:${second.port}/sessions/${id}`, { headers });
    expect(res.status, id).toBe(200);
    const got = shape((await res.json()) as Record<string, unknown>);
    const pending = inFlight.get(id) ?? [];
    if (pending.length === 0) {
      expect(got, id).toEqual(want);
      exact++;
    } else expect([want, ...pending], id).toContainEqual(got);
  }
  expect(exact).toBeGreaterThan(0);
  console.log(
    `[durability] ${env.AIPD_STORE === 'sqlite' ? 'sqlite' : 'postgres'}: ${writes} acknowledged writes over ${acked.size} sessions, all present after SIGKILL`,
  );
}

describe('acknowledged writes survive SIGKILL', () => {
  let pg: TestDatabase;
  beforeAll(async () => {
    pg = await createTestDatabase();
  });
  afterAll(async () => {
    await pg.drop();
  });

  it('on SQLite', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'aipd-durable-'));
    dirs.push(dataDir);
    await killAndCheck({ AIPD_STORE: 'sqlite', AIPD_DATA_DIR: dataDir });
  }, 60_000);

  it('on PostgreSQL', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'aipd-durable-pg-'));
    dirs.push(dataDir);
    await killAndCheck({ AIPD_STORE: pg.url, AIPD_DATA_DIR: dataDir });
  }, 60_000);
});
