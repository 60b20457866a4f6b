/**
 * WAL checkpoints in a worker thread (src/state/sqlite-checkpointer.ts), on a real database file: the WAL stays
 * bounded under steady writes (the store finishes a checkpoint so SQLite starts the WAL over), nothing written is
 * lost, and a dead worker hands checkpointing back to SQLite.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteSessionStore } from '../../src/state/sqlite-session-store.js';
import { sessionEvent, sessionRecord } from './session-store-suite.js';

const dir = mkdtempSync(join(tmpdir(), 'aipd-ckpt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const walBytes = (path: string): number => {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
};

/** Writes `rounds` commits of 50 events of ~2 KB each (about 100 KB a commit), a few ms apart. */
async function writeSteadily(store: SqliteSessionStore, rounds: number, wal: () => number): Promise<number> {
  const data = { blob: 'x'.repeat(2_000) };
  let maxWal = 0;
  for (let r = 0; r < rounds; r++) {
    await store.appendEvents(
      Array.from({ length: 50 }, (_, i) => sessionEvent(`s-${i % 8}`, 'test.blob', { ...data, r, i })),
    );
    maxWal = Math.max(maxWal, wal());
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return maxWal;
}

describe('SQLite WAL checkpoints in a worker thread', () => {
  it('keeps the WAL bounded under steady writes and loses nothing', async () => {
    const path = join(dir, 'steady.db');
    const store = new SqliteSessionStore({
      path,
      checkpointMs: 20,
      walResetBytes: 512 * 1024,
      maxEventsPerSession: 100_000,
    });
    await store.open();
    expect(store.walCheckpointer).not.toBeNull();
    await store.create(sessionRecord('s-0'), sessionEvent('s-0', 'session.created'));
    // about 40 MB through the WAL
    const maxWal = await writeSteadily(store, 400, () => walBytes(path));
    const report = await store.walCheckpointer!.checkpointNow();
    expect(report.busy).toBe(0);
    // Without the store's finishing checkpoints the WAL would hold everything written (~40 MB); with them it is
    // started over again and again, so its file never gets near that.
    expect(maxWal).toBeLessThan(8 * 1024 * 1024);
    await store.close();
    expect(walBytes(path)).toBe(0); // the last connection to close checkpointed and removed it

    const again = new SqliteSessionStore({ path, maxEventsPerSession: 100_000 });
    await again.open();
    const events = await again.allEvents(0, 100_000);
    expect(events.filter((e) => e.type === 'test.blob')).toHaveLength(400 * 50);
    await again.close();
  }, 60_000);

  it('falls back to SQLite’s own checkpoints when the worker dies', async () => {
    const path = join(dir, 'crash.db');
    const failures: Error[] = [];
    const store = new SqliteSessionStore({
      path,
      checkpointMs: 20,
      onCheckpointFailure: (err) => failures.push(err),
      maxEventsPerSession: 100_000,
    });
    await store.open();
    await store.walCheckpointer!.crash();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(failures).toHaveLength(1);
    expect(store.walCheckpointer).toBeNull();
    // SQLite checkpoints every ~4 MB again: the WAL stays near that under ~20 MB of writes
    const maxWal = await writeSteadily(store, 200, () => walBytes(path));
    expect(maxWal).toBeLessThan(8 * 1024 * 1024);
    await store.close();
  }, 60_000);

  it('runs no worker with checkpointMs 0 or for an in-memory database', async () => {
    const own = new SqliteSessionStore({ path: join(dir, 'own.db'), checkpointMs: 0 });
    await own.open();
    expect(own.walCheckpointer).toBeNull();
    await own.close();
    const mem = new SqliteSessionStore({ path: ':memory:' });
    await mem.open();
    expect(mem.walCheckpointer).toBeNull();
    await mem.close();
  });
});
