/**
 * Micro benchmark of what a plan step records on the default store: per step, the `task.commands` event
 * (TaskRecords.commands) and the checkpoint write with its `task.results` event (TaskRecords.step, awaited as the
 * server awaits it), for 64 tasks at once (as 64 bench devices), over SQLite in a temporary file (WAL,
 * synchronous=NORMAL, group commit on the next setImmediate) and over the memory store. Reported per step.
 * `sqlite floor` is what SQLite itself costs for the same rows: the 64 tasks' two event rows in one multi-row
 * INSERT and their 64 checkpoint UPDATEs, in one transaction, straight through better-sqlite3 on the same schema
 * and pragmas (bench/lib/floor-rows.ts), with the event JSON made beforehand: no aipd code at all. No store design that
 * writes a step's results and checkpoint as rows can cost less per step than that.
 * Run: `npm run build && node dist/bench/micro/store.js`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Result } from '../../protocol/index.js';
import { MemorySessionStore } from '../../src/state/memory-session-store.js';
import { SqliteSessionStore } from '../../src/state/sqlite-session-store.js';
import {
  FLOOR_CALL_ID,
  FloorWriter,
  floorTaskIds,
  stepData,
  taskRecorder,
  type FloorStep,
} from '../lib/floor-rows.js';
import { measure, printTable, type MicroResult } from './harness.js';

const TASKS = 64;
const results: Result[] = [
  { status: 'success', error: null, result: 'ok', namespace: null, call_id: FLOOR_CALL_ID },
];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'aipd-micro-store-'));
  try {
    const rows: MicroResult[] = [];
    for (const [name, store] of [
      ['sqlite', new SqliteSessionStore({ path: join(dir, 'micro.sqlite'), groupCommitMs: 0 })],
      ['memory', new MemorySessionStore({ maxEventsPerSession: 10_000 })],
    ] as const) {
      const r = await taskRecorder(store, TASKS, results);
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
  const r = await taskRecorder(new SqliteSessionStore({ path, groupCommitMs: 0 }), TASKS, results);
  await r.round(); // the schema and the 64 task rows, as aipd writes them
  await r.close();
  const writer = new FloorWriter(path);
  const data = stepData(0, results);
  const batch: FloorStep[] = floorTaskIds(TASKS).map((id) => ({ id, steps: 0, data }));
  let step = 0;
  try {
    const m = await measure(`sqlite floor: one step of ${TASKS} tasks, SQL only`, () => {
      step++;
      for (const s of batch) s.steps = step;
      writer.write(batch);
    });
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
    writer.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
