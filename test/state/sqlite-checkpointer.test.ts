/**
 * WAL checkpoints in a worker thread (src/state/sqlite-checkpointer.ts), on a real database file: the WAL stays
 * bounded under steady writes (the store finishes a checkpoint so SQLite starts the WAL over), and within its
 * bound when the worker lags, nothing written is lost, a dead worker hands checkpointing back to SQLite, and the
 * worker thread runs at its own nice value on Linux.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteSessionStore } from '../../src/state/sqlite-session-store.js';
import { processNice, threadNices } from '../helpers/proc-nice.js';
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

/**
 * How many times SQLite has started the WAL over: the checkpoint sequence number in the WAL header (bytes 12-15,
 * big-endian), which each restart increments; null while there is no WAL.
 */
const walRestarts = (path: string): number | null => {
  let fd: number;
  try {
    fd = openSync(`${path}-wal`, 'r');
  } catch {
    return null;
  }
  try {
    const header = Buffer.alloc(32);
    return readSync(fd, header, 0, 32, 0) === 32 ? header.readUInt32BE(12) : null;
  } finally {
    closeSync(fd);
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
      // The backstop: past 4 MiB the store's commits checkpoint themselves, except while the worker is inside a
      // checkpoint of its own. The worker, at its lower priority, keeps the WAL near 512 KiB when it gets a core; on
      // a machine busy with other test files it is starved, and a fresh-clone CI run saw 16.1 MiB with no backstop
      // before 64 MiB. With this one, three busy loops beside this test on 2 cores gave 6.7-12.7 MB.
      walMaxBytes: 4 * 1024 * 1024,
      maxEventsPerSession: 100_000,
    });
    await store.open();
    expect(store.walCheckpointer).not.toBeNull();
    let maxWal: number;
    try {
      await store.create(sessionRecord('s-0'), sessionEvent('s-0', 'session.created'));
      // about 40 MB through the WAL
      maxWal = await writeSteadily(store, 400, () => walBytes(path));
      // the worker's checkpoints, finished by the store's connection, started the WAL over
      expect(store.walCheckpointer!.finished).toBeGreaterThan(0);
      const report = await store.walCheckpointer!.checkpointNow();
      expect(report.busy).toBe(0);
    } finally {
      await store.close(); // a failure here must not leave its worker thread to the next test
    }
    // Without checkpoints the WAL would hold everything written (~40 MB); with them it is started over again and
    // again. How far it gets between two depends on how long a starved worker holds the checkpoint lock: at most
    // half of what was written leaves room for a busy machine.
    expect(maxWal).toBeLessThan(20 * 1024 * 1024);
    expect(walBytes(path)).toBe(0); // the last connection to close checkpointed and removed it

    const again = new SqliteSessionStore({ path, maxEventsPerSession: 100_000 });
    await again.open();
    const events = await again.allEvents(0, 100_000);
    expect(events.filter((e) => e.type === 'test.blob')).toHaveLength(400 * 50);
    await again.close();
  }, 60_000);

  it('starts the WAL over only once it is past its reset size, not after every checkpoint that caught up', async () => {
    // Each restart writes and fsyncs the WAL's new header inside a commit, on the event loop. Without the pin, the
    // first commit after a checkpoint that copied every frame restarted the WAL: here, after every round.
    const path = join(dir, 'restarts.db');
    const store = new SqliteSessionStore({
      path,
      checkpointMs: 3_600_000, // only the checkpoints asked for here
      walResetBytes: 1024 * 1024,
      maxEventsPerSession: 100_000,
    });
    await store.open();
    const ckpt = store.walCheckpointer!;
    const small = (i: number): Promise<unknown> =>
      store.appendEvents([sessionEvent(`s-${i % 8}`, 'test.small', { i, pad: 'y'.repeat(500) })]);
    try {
      await store.create(sessionRecord('s-0'), sessionEvent('s-0', 'session.created'));
      const start = walRestarts(path);
      for (let i = 0; i < 20; i++) {
        await small(i);
        const r = await ckpt.checkpointNow();
        expect([r.busy, r.checkpointed]).toEqual([0, r.log]); // every frame copied
        await small(i); // the commit that would have started the WAL over
      }
      expect(walRestarts(path)).toBe(start);
      // Past its reset size the pin is let go: the store finishes the checkpoint and its next commit starts over.
      await writeSteadily(store, 12, () => 0); // about 1.2 MB
      const big = await ckpt.checkpointNow();
      expect(big.log).toBeGreaterThan(256);
      await small(0);
      expect(walRestarts(path)).toBe(start! + 1);
    } finally {
      await store.close();
    }
  }, 30_000);

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

  it('keeps the WAL within walMaxBytes when the worker does not keep up, and loses nothing', async () => {
    // A worker that never gets to run (an hour between checkpoints): only the store's bound limits the WAL.
    const bounded = join(dir, 'lagging-bounded.db');
    const store = new SqliteSessionStore({
      path: bounded,
      checkpointMs: 3_600_000,
      walResetBytes: 256 * 1024,
      walMaxBytes: 1024 * 1024,
      maxEventsPerSession: 100_000,
    });
    await store.open();
    // about 10 MB through the WAL, 100 KB a commit
    const maxWal = await writeSteadily(store, 100, () => walBytes(bounded));
    expect(maxWal).toBeLessThan(2 * 1024 * 1024);
    await store.close();
    const again = new SqliteSessionStore({ path: bounded, maxEventsPerSession: 100_000 });
    await again.open();
    expect(await again.allEvents(0, 100_000)).toHaveLength(100 * 50);
    await again.close();

    // The same writes with the default bound (64 MiB): the WAL holds all of them.
    const unbounded = join(dir, 'lagging-default.db');
    const other = new SqliteSessionStore({
      path: unbounded,
      checkpointMs: 3_600_000,
      maxEventsPerSession: 100_000,
    });
    await other.open();
    expect(await writeSteadily(other, 100, () => walBytes(unbounded))).toBeGreaterThan(8 * 1024 * 1024);
    await other.close();
  }, 60_000);

  it.runIf(process.platform === 'linux')(
    'runs the worker thread at the process nice value plus its own',
    async () => {
      const threads = (): number[] => threadNices('self');
      const base = processNice('self');
      const want = Math.min(19, base + 7);
      const before = threads().filter((n) => n === want).length;
      const store = new SqliteSessionStore({ path: join(dir, 'nice.db'), checkpointNice: 7 });
      await store.open();
      // Set by the worker as it starts, before it says it is ready; no other thread changes.
      expect(threads().filter((n) => n === want)).toHaveLength(before + (want === base ? 0 : 1));
      expect(threads().filter((n) => n !== want && n !== base)).toEqual([]);
      await store.close();
      expect(threads().filter((n) => n === want)).toHaveLength(before);
    },
  );

  it('follows a long caught-up checkpoint with at most checkpointFollowUps more, then the store finishes it', async () => {
    for (const followUps of [0, 2]) {
      const path = join(dir, `follow-ups-${followUps}.db`);
      const store = new SqliteSessionStore({
        path,
        checkpointMs: 3_600_000, // only the checkpoints asked for here, and their follow-ups
        walResetBytes: 256 * 1024,
        checkpointFollowUpMs: 0, // every checkpoint takes longer than that
        checkpointFollowUps: followUps,
        maxEventsPerSession: 100_000,
      });
      await store.open();
      const ckpt = store.walCheckpointer!;
      await writeSteadily(store, 10, () => 0); // about 1 MB: the WAL is past its reset size
      const first = await ckpt.checkpointNow();
      expect(first.checkpointed).toBe(first.log);
      expect(first.log * 4096).toBeGreaterThan(256 * 1024);
      for (let t = 0; ckpt.reports < 1 + followUps && t < 200; t++)
        await new Promise((r) => setTimeout(r, 25));
      await new Promise((r) => setTimeout(r, 300)); // time enough for a follow-up too many
      expect(ckpt.reports).toBe(1 + followUps);
      // The store finished the checkpoint after the last follow-up: its next commit started the WAL over.
      await store.appendEvents([sessionEvent('s-0', 'test.small')]);
      const after = await ckpt.checkpointNow();
      expect(after.log).toBeLessThan(first.log / 10);
      await store.close();
    }
  }, 30_000);

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
