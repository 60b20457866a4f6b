/**
 * WAL checkpoints off the event loop. SQLite's own auto-checkpoint runs inside the commit that crosses
 * `wal_autocheckpoint` pages (about 4 MB of WAL): it copies those pages into the database file and fsyncs, on the
 * thread that committed — here the event loop, since better-sqlite3 is synchronous. Under a steady stream of task
 * steps that was a 20–100 ms stall about twice a second on the build machine, the largest part of the round trip's
 * p99 (commit p99 22 ms with it, 8 ms without).
 *
 * So the store moves auto-checkpointing out of the way (below), and this worker thread, with a connection of its
 * own, runs a `PASSIVE` checkpoint every `everyMs` (asked for from the store's thread): it copies what the WAL holds
 * without taking any lock a writer needs, so the event loop never waits for it (a plain `RESTART` from here was
 * tried: it blocks writers while it waits and copies, 40–55 ms). A PASSIVE checkpoint copies the frames that were
 * in the WAL when it began; under steady writes some always arrive meanwhile, and SQLite starts the WAL over from
 * its beginning only when a write finds every frame copied. So once a report shows everything up to its start
 * copied and the WAL past its reset size, one more PASSIVE checkpoint runs on the store's own connection, between
 * two commits (`caughtUp`): it copies only the frames of the last few milliseconds, and the store's next commit
 * starts the WAL over.
 *
 * But SQLite also starts the WAL over at the first commit after any checkpoint that copied every frame, and that
 * commit writes and fsyncs the WAL's new header, on the event loop. At moderate load the worker's checkpoints often
 * catch up, and the WAL was started over (an fsync on the event loop, about 1 ms here) several times a second,
 * every 150 KB or so. So a read transaction (the pin, sqlite-wal-pin.ts) is held from each checkpoint to the next
 * while the WAL is under its reset size and the worker keeps up: it keeps SQLite appending, and the WAL starts over
 * only past its reset size, as described above. The pin lives on the store's thread, which takes it again just
 * before it asks for each checkpoint, and lets it go when the worker has not reported the last one.
 *
 * Durability does not change: with synchronous=NORMAL a commit is not fsync'd either way; checkpoints fsync. If the
 * worker fails, SQLite's auto-checkpoint is turned back on (and the store told, `onFailure`), so the WAL stays
 * bounded whatever happens to the worker. While it runs, the store's connection keeps an auto-checkpoint far past
 * where the worker starts the WAL over (`maxBytes`): past that size the commits checkpoint on the event loop, as
 * SQLite's own would, so a worker that stops or falls behind (a busy machine, its lower priority) does not let the
 * WAL grow without end. The bound holds while the worker makes progress: the store's checkpoint is PASSIVE and is
 * skipped while the worker holds the checkpoint lock, so a worker starved in the middle of one lets the WAL grow
 * until it finishes. (The pin does not change this: it is let go at the first interval the worker has not kept up
 * with.) The first such checkpoint on the event loop copies and fsyncs up to `maxBytes` less what was already
 * copied, a stall of tens to hundreds of ms; it is meant never to happen.
 *
 * Sharing the CPU. On Linux the worker thread runs at a lower CPU priority (`nice` added to the process's own, up
 * to 19; a per-thread attribute there): a checkpoint is about 5 ms of CPU, and at the same priority it, and the
 * kernel's work for the disk writes of its fsync, shared the cores with the event loop, which then waited for a core
 * (run-queue delay 10-15 % of the time during a checkpoint, against 2-3 % outside one). Under `aip-json-lat` half of
 * the round trips over 2 ms fell in the 8 % of the time a checkpoint ran. The disk's own queue is not affected.
 * Elsewhere the priority is left as it is (setpriority would lower the whole process).
 *
 * The worker is a small CommonJS script evaluated in the thread (`eval: true`), so it runs the same from the
 * compiled build and from the TypeScript sources under the test runner; it loads better-sqlite3 from the path this
 * module resolves.
 */
import type Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { WalPin } from './sqlite-wal-pin.js';

/**
 * The default interval of the worker's checkpoints (`--sqlite-checkpoint-ms`). A checkpoint copies each page the
 * WAL holds once, however many times it was written since the last one, so a longer interval copies less; but each
 * checkpoint also fsyncs what the WAL gained since the last one, and shorter ones spread that over time. With the
 * event log append-only (sqlite-log-index.ts) the pages written over again are few: under full `aip-json` load the
 * worker's CPU was 2.1-2.2 µs a round trip at 100 ms against 1.75-1.8 µs at 250 ms (about 1 % of a round trip's
 * server CPU), while `aip-json-lat` p99 fell: changing only the interval, medians of 8 runs were 3.0 ms at 100 ms
 * against 3.9 ms at 250 ms and 2.6 ms with no checkpoint during the run; with the lower priority too, 2.9 ms.
 */
export const DEFAULT_SQLITE_CHECKPOINT_MS = 100;

/**
 * The default nice increment of the checkpoint thread on Linux (`--sqlite-checkpoint-nice`): added to the process's
 * nice value, up to 19; 0 keeps the process's.
 */
export const DEFAULT_SQLITE_CHECKPOINT_NICE = 10;

/**
 * The default WAL size past which commits checkpoint on the event loop (`--sqlite-wal-max-bytes`): four times the
 * size at which the worker's checkpoints start the WAL over, so it is reached only when the worker falls behind.
 */
export const DEFAULT_SQLITE_WAL_MAX_BYTES = 64 * 1024 * 1024;

/**
 * The store's finishing checkpoint (`caughtUp`) copies, and fsyncs, on the event loop, what was written while the
 * worker's last checkpoint ran. After one that took longer than this (`--sqlite-checkpoint-follow-up-ms`), the
 * worker is asked for another at once (up to `DEFAULT_SQLITE_CHECKPOINT_FOLLOW_UPS` in a row), so that the event
 * loop is left only the last moment's frames. Under `aip-json-lat` the worker's checkpoints every 250 ms took
 * 16-20 ms, and the finishing one after them 4.5 ms on average, up to 27 ms. The time includes the worker's
 * fdatasync: on a disk with slow syncs every reset takes all the follow-ups (bounded by their number).
 */
export const DEFAULT_SQLITE_CHECKPOINT_FOLLOW_UP_MS = 2;
/** Follow-up checkpoints in a row at most (`--sqlite-checkpoint-follow-ups`); 0: the store finishes at once. */
export const DEFAULT_SQLITE_CHECKPOINT_FOLLOW_UPS = 3;

/** SQLite's default `wal_autocheckpoint` (pages), put back if the worker fails. */
const SQLITE_AUTOCHECKPOINT_PAGES = 1_000;

export interface CheckpointerOptions {
  /**
   * The store's own connection to the file: its auto-checkpoint is moved out to `maxBytes` while the worker runs
   * (and back to SQLite's default if the worker fails), and it runs the checkpoint that lets SQLite start the WAL
   * over.
   */
  readonly db: Database.Database;
  /** The database file (its WAL is `<path>-wal`). */
  readonly path: string;
  /** Interval of the checkpoints. */
  readonly everyMs: number;
  /** WAL size past which the store's connection finishes a checkpoint, so that the WAL starts over. */
  readonly resetBytes: number;
  /** WAL size past which the store's commits checkpoint themselves (SQLite's auto-checkpoint), if the worker lags. */
  readonly maxBytes: number;
  /** Added to the process's nice value for the worker thread on Linux (0-19, capped at 19); 0: the same. */
  readonly nice: number;
  /** How long the worker's connection waits for a lock. */
  readonly busyMs: number;
  /** A caught-up checkpoint that took longer than this is followed by another in the worker (see above). */
  readonly followUpAfterMs: number;
  /** Follow-ups in a row at most before the store's connection finishes the checkpoint. */
  readonly maxFollowUps: number;
  /** The worker failed or exited on its own; SQLite's auto-checkpoint is on again. */
  readonly onFailure: (err: Error) => void;
}

/** One checkpoint's outcome, as PRAGMA wal_checkpoint reports it. */
export interface CheckpointReport {
  /** 1 when the checkpoint could not run for a lock (it is tried again next time). */
  readonly busy: number;
  /** Frames in the WAL when the checkpoint began, and frames copied into the database (of those). */
  readonly log: number;
  readonly checkpointed: number;
  /** How long the checkpoint took in the worker. */
  readonly ms: number;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
// Linux only: there setpriority(0) is the calling thread's; elsewhere it would be the whole process's.
// Only ever lowers the thread's priority, which needs no privilege.
if (workerData.nice > 0 && process.platform === 'linux') {
  const os = require('node:os');
  try { os.setPriority(0, Math.min(19, os.getPriority(0) + workerData.nice)); } catch { /* runs at the process's */ }
}
const Database = require(workerData.lib);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = ' + workerData.busyMs);
// SQLite fsyncs the database file only after a checkpoint that reached the end of the WAL, which under steady writes
// is the store's (on the event loop): so this thread flushes what it copied itself, and that one has little left.
const dbFd = fs.openSync(workerData.path, 'r');
const tick = () => {
  const t0 = performance.now();
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    if (r.checkpointed > 0) fs.fdatasyncSync(dbFd);
    const ms = performance.now() - t0;
    parentPort.postMessage({ t: 'done', report: { busy: r.busy, log: r.log, checkpointed: r.checkpointed, ms } });
  } catch (err) {
    // SQLITE_BUSY past busy_timeout: reported as busy (the next one tries again); anything else ends the worker
    if (!err || err.code !== 'SQLITE_BUSY') throw err;
    const ms = performance.now() - t0;
    parentPort.postMessage({ t: 'done', report: { busy: 1, log: -1, checkpointed: -1, ms } });
  }
};
parentPort.on('message', (m) => {
  if (m === 'now') tick();
  if (m === 'stop') { fs.closeSync(dbFd); db.close(); parentPort.close(); }
});
parentPort.postMessage({ t: 'ready' });
`;

export class WalCheckpointer {
  private readonly worker: Worker;
  private stopping = false;
  private failed = false;
  private readonly waiters: ((r: CheckpointReport) => void)[] = [];
  /** WAL frames past which a caught-up report makes the store's connection finish the checkpoint. */
  private readonly resetFrames: number;
  /** Follow-up checkpoints asked of the worker since the store's connection last finished one. */
  private followUps = 0;
  private reportCount = 0;
  private finishCount = 0;
  /** Resolves once the worker has opened its connection (or failed to). */
  readonly ready: Promise<void>;
  /** Keeps SQLite from starting the WAL over between checkpoints (sqlite-wal-pin.ts). */
  private readonly pin: WalPin;
  /** The interval's checkpoints are asked for from here (with the pin), not timed in the worker. */
  private readonly timer: NodeJS.Timeout;
  /** An interval's checkpoint was asked for and has not reported yet: the worker is behind, the next one waits. */
  private pending = false;
  /** Frames in the WAL at the last report (-1: none yet). */
  private lastLog = -1;

  constructor(private readonly opts: CheckpointerOptions) {
    const pageSize = opts.db.pragma('page_size', { simple: true }) as number;
    this.resetFrames = Math.ceil(opts.resetBytes / pageSize);
    opts.db.pragma(`wal_autocheckpoint = ${Math.max(this.resetFrames, Math.ceil(opts.maxBytes / pageSize))}`);
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        lib: createRequire(import.meta.url).resolve('better-sqlite3'),
        path: opts.path,
        nice: opts.nice,
        busyMs: opts.busyMs,
      },
    });
    this.pin = new WalPin(opts.path, opts.busyMs);
    this.timer = setInterval(() => this.tick(), opts.everyMs);
    this.timer.unref();
    this.ready = new Promise((resolve) => {
      // Referenced until it has started, so that its start does not rely on other handles keeping the process
      // alive; after that it never holds the process open.
      const settle = (): void => {
        this.worker.unref();
        resolve();
      };
      this.worker.once('message', settle);
      this.worker.once('error', settle);
      this.worker.once('exit', settle);
    });
    this.worker.on('message', (m: { t: string; report?: CheckpointReport }) => {
      if (m.t !== 'done' || !m.report) return;
      this.reportCount++;
      this.pending = false;
      if (m.report.busy === 0) this.lastLog = m.report.log;
      // Past its reset size, the WAL must be free to start over once this checkpoint is finished.
      if (this.lastLog >= this.resetFrames) this.pin.release();
      this.caughtUp(m.report);
      for (const w of this.waiters.splice(0)) w(m.report);
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => {
      if (!this.stopping) this.fail(new Error(`the WAL checkpoint worker exited (code ${code})`));
    });
  }

  /** Checkpoints the worker has reported so far: on its interval, asked for, and follow-ups (tests and tools). */
  get reports(): number {
    return this.reportCount;
  }

  /** Checkpoints the store's connection finished after a caught-up report, so that the WAL started over (tests). */
  get finished(): number {
    return this.finishCount;
  }

  /** Runs a checkpoint now; resolves its report (tests and tools). */
  checkpointNow(): Promise<CheckpointReport> {
    return new Promise((resolve, reject) => {
      if (this.failed || this.stopping) return reject(new Error('the WAL checkpoint worker is not running'));
      this.waiters.push(resolve);
      this.request();
    });
  }

  /**
   * The interval's checkpoint: the pin is taken again first, at the WAL's last frame, while the worker keeps up (it
   * reported the last one) and the WAL is under its reset size; otherwise it is let go, and the WAL may start over
   * (a worker that is behind must not hold it, see the note above). Nothing is asked of a worker that is behind.
   */
  private tick(): void {
    if (this.stopping || this.failed) return;
    if (this.pending) this.pin.release();
    else this.request();
  }

  /** A checkpoint, with the pin taken again first while the WAL is under its reset size (let go otherwise). */
  private request(): void {
    if (this.lastLog >= this.resetFrames) this.pin.release();
    else this.pin.hold();
    this.pending = true;
    this.worker.postMessage('now');
  }

  /** Stops the worker and closes its connection; resolves once the thread has ended. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.endInterval();
    if (this.failed) return;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage('stop');
    const timer = setTimeout(() => void this.worker.terminate(), 5_000);
    await exited;
    clearTimeout(timer);
  }

  /** Ends the worker as a crash would (tests: the store must fall back to SQLite's own checkpoints). */
  async crash(): Promise<void> {
    await this.worker.terminate();
  }

  /**
   * Everything up to the worker's start is copied and the WAL is past its reset size: copy the rest on the store's
   * connection (between two commits, as no transaction is ever open across turns of the event loop), so that its
   * next commit starts the WAL over. After a long checkpoint, the worker first runs another (`followUpAfterMs`, at
   * most `maxFollowUps` in a row), so that this one has only a few milliseconds of frames left.
   */
  private caughtUp(r: CheckpointReport): void {
    const { db } = this.opts;
    if (this.stopping || !db.open || r.busy !== 0 || r.checkpointed < r.log || r.log < this.resetFrames) {
      this.followUps = 0;
      return;
    }
    if (r.ms > this.opts.followUpAfterMs && this.followUps < this.opts.maxFollowUps) {
      this.followUps++;
      this.worker.postMessage('now');
      return;
    }
    this.followUps = 0;
    try {
      const [done] = db.pragma('wal_checkpoint(PASSIVE)') as {
        busy: number;
        log: number;
        checkpointed: number;
      }[];
      if (done && done.busy === 0 && done.checkpointed === done.log) this.finishCount++;
    } catch {
      // busy (the worker began its next one): the next report tries again
    }
  }

  /** The interval ends and the pin closes (SQLite's own checkpoints need the WAL free to start over). */
  private endInterval(): void {
    clearInterval(this.timer);
    this.pin.close();
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.endInterval();
    // Back to SQLite's own checkpoints, so the WAL stays bounded.
    if (!this.stopping && this.opts.db.open)
      this.opts.db.pragma(`wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT_PAGES}`);
    this.opts.onFailure(err);
  }
}
