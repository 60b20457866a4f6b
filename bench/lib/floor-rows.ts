/**
 * The rows a plan step records on the default store, written straight through better-sqlite3 with no aipd code:
 * per step, the `task.commands` and `task.results` event rows (one multi-row INSERT for a whole batch of steps)
 * and the checkpoint UPDATE, in one transaction, on aipd's own schema and pragmas (WAL, synchronous=NORMAL).
 * `bench/micro/store.ts` times it (`sqlite floor`) and `bench/servers/uws-floor.ts` does it for every round trip:
 * no store design that writes a step's results and checkpoint as rows can cost less per step.
 */
import Database from 'better-sqlite3';
import type { Result } from '../../protocol/index.js';
import { silentLogger } from '../../src/logger.js';
import { SessionService } from '../../src/records/session-service.js';
import { TaskRecords } from '../../src/server/task-records.js';
import type { SessionStore } from '../../src/state/session-store.js';

export const FLOOR_CALL_ID = 'c7a0b1c2-d3e4-4f50-8a9b-cdef01234567';
const RESPONSE_ID = '5d0e7c5e-1234-4abc-8def-0123456789ab';

/** The ids of the `n` bench tasks that `taskRecorder` makes (and that `FloorWriter` then writes steps of). */
export function floorTaskIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
}

/** Opens `store`, makes `n` task records through TaskRecords, and returns a recorder of one step of each. */
export async function taskRecorder(
  store: SessionStore,
  n: number,
  results: readonly Result[],
): Promise<{ round: () => Promise<void>; close: () => Promise<void> }> {
  await store.open();
  const log = silentLogger();
  const sessions = new SessionService(store, log, { maxEventDataBytes: 64 * 1024 });
  const records = new TaskRecords(sessions, 'bench-node', log);
  const ids = floorTaskIds(n);
  for (const [i, id] of ids.entries()) {
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
  }
  let step = 0;
  return {
    round: async () => {
      const i = step++;
      const writes: Promise<void>[] = [];
      for (const id of ids) {
        records.commands(id, RESPONSE_ID, [FLOOR_CALL_ID], ['noop']);
        writes.push(records.step(id, i, results));
      }
      await Promise.all(writes);
    },
    close: () => store.close(),
  };
}

/** One step of one task: its session id, its checkpoint's step count, and its `task.results` event data (JSON). */
export interface FloorStep {
  id: string;
  steps: number;
  data: string;
}

/** The raw-SQL writer over a database that `taskRecorder` made. */
export class FloorWriter {
  private readonly db: Database.Database;
  private readonly inserts = new Map<number, Database.Statement>();
  private readonly update: Database.Statement;
  private readonly commands = JSON.stringify({
    response_id: RESPONSE_ID,
    call_ids: [FLOOR_CALL_ID],
    tools: ['noop'],
  });
  private lastId: number;
  /** Writes a batch of steps in one transaction. */
  readonly write: (batch: readonly FloorStep[]) => void;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('cache_size = -32000');
    this.lastId = this.db.prepare('SELECT coalesce(max(id), 0) FROM session_events').pluck().get() as number;
    this.update = this.db.prepare(
      'UPDATE session_progress SET checkpoint = ?, updated_at = ?, version = version + 1 WHERE id = ?',
    );
    this.write = this.db.transaction((batch: readonly FloorStep[]) => {
      const at = new Date().toISOString();
      const values: unknown[] = [];
      for (const s of batch) values.push(++this.lastId, s.id, 'task.commands', at, this.commands);
      for (const s of batch) {
        values.push(++this.lastId, s.id, 'task.results', at, s.data);
        this.update.run(`{"aip_steps":${s.steps}}`, at, s.id);
      }
      this.insert(2 * batch.length).run(values);
    });
  }

  /** Stops SQLite's own checkpoints inside commits (the WAL then grows for the life of the writer). */
  noAutoCheckpoint(): void {
    this.db.pragma('wal_autocheckpoint = 0');
  }

  close(): void {
    this.db.close();
  }

  /** The multi-row INSERT of `rows` event rows (one statement per size, made once). */
  private insert(rows: number): Database.Statement {
    let st = this.inserts.get(rows);
    if (!st) {
      st = this.db.prepare(
        `INSERT INTO session_events (id, session_id, type, at, data) VALUES ${Array.from({ length: rows }, () => '(?, ?, ?, ?, ?)').join(', ')}`,
      );
      this.inserts.set(rows, st);
    }
    return st;
  }
}

/** The `task.results` event data aipd writes for a step (TaskRecords.step), as JSON text. */
export function stepData(step: number, results: readonly Result[]): string {
  return JSON.stringify({ updates: ['checkpoint'], step, statuses: results.map((r) => r.status), results });
}
