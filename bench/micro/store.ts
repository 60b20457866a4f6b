/**
 * Micro benchmark of what a plan step records on the default store: per step, the `task.commands` event
 * (TaskRecords.commands) and the checkpoint write with its `task.results` event (TaskRecords.step, awaited as the
 * server awaits it), for 64 tasks at once (as 64 bench devices), over SQLite in a temporary file (WAL,
 * synchronous=NORMAL, group commit on the next setImmediate) and over the memory store. Reported per step.
 * `sqlite floor` is what SQLite itself costs for the same rows: the 64 tasks' two event rows in one multi-row
 * INSERT and their 64 checkpoint UPDATEs, in one transaction, straight through better-sqlite3 on the same schema
 * and pragmas, with every value (JSON text included) made beforehand: no aipd code at all. No store design that
 * writes a step's results and checkpoint as rows can cost less per step than that.
 * Run: `npm run build && node dist/bench/micro/store.js`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
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
    rows.push(...(await sqlFloor(join(dir, 'floor.sqlite'))));
    printTable(`step recording (node ${process.version})`, rows);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The `sqlite floor` rows: SQLite's own cost for one step of 64 tasks (see the header). */
async function sqlFloor(path: string): Promise<MicroResult[]> {
  const store = new SqliteSessionStore({ path, groupCommitMs: 0 });
  const r = await recorder(store); // the schema and the 64 task rows, as aipd writes them
  await r.round();
  await r.close();
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('cache_size = -32000');
  const ids = Array.from(
    { length: TASKS },
    (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
  );
  const at = new Date().toISOString();
  const commands = JSON.stringify({ response_id: CALL_ID, call_ids: [CALL_ID], tools: ['noop'] });
  const stepData = JSON.stringify({ updates: ['checkpoint'], step: 0, statuses: ['success'], results });
  const next = db.prepare('SELECT coalesce(max(id), 0) FROM session_events').pluck().get() as number;
  let id = next;
  const insert = db.prepare(
    `INSERT INTO session_events (id, session_id, type, at, data) VALUES ${Array.from({ length: 2 * TASKS }, () => '(?, ?, ?, ?, ?)').join(', ')}`,
  );
  const update = db.prepare(
    'UPDATE session_progress SET checkpoint = ?, updated_at = ?, version = version + 1 WHERE id = ?',
  );
  let step = 0;
  const round = db.transaction(() => {
    const values: unknown[] = [];
    const checkpoint = JSON.stringify({ aip_steps: ++step });
    for (const sid of ids) values.push(++id, sid, 'task.commands', at, commands);
    for (const sid of ids) {
      values.push(++id, sid, 'task.results', at, stepData);
      update.run(checkpoint, at, sid);
    }
    insert.run(values);
  });
  try {
    const m = await measure(`sqlite floor: one step of ${TASKS} tasks, SQL only`, () => round.immediate());
    return [
      m,
      {
        name: '  … per step (2 event rows + 1 checkpoint UPDATE, no aipd code)',
        ns_per_op: Math.round(m.ns_per_op / TASKS),
        ops_per_s: m.ops_per_s * TASKS,
        reps: m.reps,
      },
    ];
  } finally {
    db.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
