/**
 * The WAL pin: a read transaction on a connection of its own that keeps SQLite from starting the WAL over.
 *
 * SQLite starts the WAL over at the first commit after a checkpoint that copied every frame, and that commit
 * writes and fsyncs the WAL's new header, on the committing thread: the event loop, for the store. Under a steady
 * stream of small commits the checkpoint worker (sqlite-checkpointer.ts) often catches up, and the WAL was started
 * over every 150 KB or so, several fsyncs a second on the event loop. A reader whose snapshot ends at a frame the
 * checkpoints have not copied yet holds a WAL read lock, and while it does SQLite goes on appending. So the
 * checkpointer holds one from each of its checkpoints to the next (`hold` just before asking for one: its snapshot
 * ends at the WAL's last frame, which the checkpoint can still copy), and lets it go once the WAL is past its reset
 * size, or the worker falls behind, so that the WAL starts over where the checkpointer decides.
 *
 * It lives on the store's thread, not the worker's, so that a worker starved of CPU never keeps it: the store's own
 * bound on the WAL (`maxBytes`) needs the WAL free to start over.
 */
import Database from 'better-sqlite3';

export class WalPin {
  private readonly db: Database.Database;
  private readonly begin: Database.Statement;
  private readonly read: Database.Statement;
  private readonly end: Database.Statement;

  constructor(path: string, busyMs: number) {
    this.db = new Database(path, { fileMustExist: true });
    this.db.pragma(`busy_timeout = ${busyMs}`);
    // It reads one page (the schema's root), once per checkpoint: no cache to speak of.
    this.db.pragma('cache_size = 8');
    this.begin = this.db.prepare('BEGIN');
    this.read = this.db.prepare('SELECT 1 FROM sqlite_schema LIMIT 1');
    this.end = this.db.prepare('COMMIT');
  }

  /** Whether a snapshot is held now. */
  get held(): boolean {
    return this.db.open && this.db.inTransaction;
  }

  /** Lets the snapshot held (if any) go, and takes one of the WAL as it is now. */
  hold(): void {
    this.release();
    try {
      this.begin.run();
      this.read.get(); // a deferred transaction takes its snapshot at its first read
    } catch {
      this.release(); // not pinned this time (a lock timed out): the WAL may start over, as it would without one
    }
  }

  release(): void {
    if (this.held) this.end.run();
  }

  close(): void {
    if (!this.db.open) return;
    this.release();
    this.db.close();
  }
}
