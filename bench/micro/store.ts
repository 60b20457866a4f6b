/**
 * Micro benchmark of what a plan step records on the default store: per step, the `task.commands` event
 * (TaskRecords.commands) and the checkpoint write with its `task.results` event (TaskRecords.step, awaited as the
 * server awaits it), for 64 tasks at once (as 64 bench devices), over SQLite in a temporary file (WAL,
 * synchronous=NORMAL, group commit on the next setImmediate) and over the memory store. Reported per step.
 * Run: `npm run build && node dist/bench/micro/store.js`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Result } from '../../protocol/index.js';
import { silentLogger } from '../../src/logger.js';
import { SessionService } from '../../src/records/session-service.js';
import { TaskRecords } from '../../src/server/task-records.js';
import { MemorySessionStore } from '../../src/state/memory-session-store.js';
import type { SessionStore } from '../../src/state/session-store.js';
import { SqliteSessionStore } from '../../src/state/sqlite-session-store.js';
import { measure, printTable, type MicroResult } from './harness.js';

const TASKS = 64;
const CALL_ID = 'c7a0b1c2-d3e4-4f50-8a9b-cdef01234567';
const results: Result[] = [
  { status: 'success', error: null, result: 'ok', namespace: null, call_id: CALL_ID },
];

async function recorder(
  store: SessionStore,
): Promise<{ round: () => Promise<void>; close: () => Promise<void> }> {
  await store.open();
  const log = silentLogger();
  const sessions = new SessionService(store, log, { maxEventDataBytes: 64 * 1024 });
  const records = new TaskRecords(sessions, 'bench-node', log);
  const ids: string[] = [];
  for (let i = 0; i < TASKS; i++) {
    const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    const rec = records.record({
      id,
      taskName: `t${i}`,
      requester: `dev-${i}`,
      executor: `dev-${i}`,
      platform: 'linux',
      mode: 'service',
      request: '{"task":"bench","steps":[]}',
      history: [{ state: 'created', at: sessions.now() }],
    });
    if (!(await records.begin(rec))) throw new Error('could not create the bench task records');
    ids.push(id);
  }
  let step = 0;
  return {
    round: async () => {
      const i = step++;
      const writes: Promise<void>[] = [];
      for (const id of ids) {
        records.commands(id, '5d0e7c5e-1234-4abc-8def-0123456789ab', [CALL_ID], ['noop']);
        writes.push(records.step(id, i, results));
      }
      await Promise.all(writes);
    },
    close: () => store.close(),
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'aipd-micro-store-'));
  try {
    const rows: MicroResult[] = [];
    for (const [name, store] of [
      ['sqlite', new SqliteSessionStore({ path: join(dir, 'micro.sqlite'), groupCommitMs: 0 })],
      ['memory', new MemorySessionStore({ maxEventsPerSession: 10_000 })],
    ] as const) {
      const r = await recorder(store);
      const m = await measure(`${name}: record one step of ${TASKS} tasks`, r.round, { reps: 5 });
      rows.push(m, {
        name: `  … per step (commands event + checkpoint write, committed)`,
        ns_per_op: Math.round(m.ns_per_op / TASKS),
        ops_per_s: m.ops_per_s * TASKS,
        reps: m.reps,
      });
      await r.close();
    }
    printTable(`step recording (node ${process.version})`, rows);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
