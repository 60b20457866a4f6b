/**
 * Group commit: writes queue up and are committed together, in call order, by one `commit(batch)` call at most
 * `delayMs` after the first of them (0: on the next `setImmediate`). One commit runs at a time; what arrives while
 * one runs goes into the next, which starts as soon as the running one ends (those writes already waited). A batch
 * holds at most `maxBatch` ops, so one commit never holds the event loop (SQLite) or the database's locks
 * (PostgreSQL) for long; the rest follows on the next turn of the event loop.
 *
 * `commit` settles every op of its batch itself (resolve or reject, in order) and must not throw; it may be
 * synchronous (SQLite) or return a promise (PostgreSQL). `drain()` / `drainSync()` commit everything queued so
 * far before a read, which is how the stores give read-your-writes to callers that do not await their writes.
 */
/** The stores' default delay: the writes of one event-loop turn commit together at its end. */
export const DEFAULT_GROUP_COMMIT_MS = 0;

export class GroupCommit<Op> {
  private batch: Op[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private immediate: ReturnType<typeof setImmediate> | null = null;
  private running: Promise<void> | null = null;
  /** Ops queued and ops committed (settled) so far; drain() waits until the second reaches the first. */
  private queued = 0;
  private settled = 0;

  constructor(
    private readonly delayMs: number = DEFAULT_GROUP_COMMIT_MS,
    private readonly commit: (batch: Op[]) => void | Promise<void>,
    private readonly maxBatch = Infinity,
  ) {}

  /** Ops not yet handed to a commit. */
  get pending(): number {
    return this.batch.length;
  }

  add(op: Op): void {
    this.batch.push(op);
    this.queued++;
    if (this.batch.length === 1 && this.running === null) this.schedule();
  }

  /** Commits what is queued now, synchronously (for a synchronous `commit`). */
  drainSync(): void {
    while (this.batch.length > 0 && this.running === null) this.flush();
  }

  /** Resolves once every op queued before this call is committed. */
  async drain(): Promise<void> {
    const target = this.queued;
    while (this.settled < target) {
      if (this.running === null) this.flush();
      if (this.running !== null) await this.running;
    }
  }

  private schedule(): void {
    if (this.timer !== null || this.immediate !== null) return;
    if (this.delayMs <= 0) this.immediate = setImmediate(() => this.flush());
    else this.timer = setTimeout(() => this.flush(), this.delayMs);
  }

  private flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.timer = this.immediate = null;
    if (this.running !== null || this.batch.length === 0) return;
    let batch: Op[];
    if (this.batch.length <= this.maxBatch) {
      batch = this.batch;
      this.batch = [];
    } else batch = this.batch.splice(0, this.maxBatch);
    let out: void | Promise<void>;
    try {
      out = this.commit(batch);
    } catch {
      // commit settles its ops itself; a throw here is a bug in it, and must not wedge the queue
      out = undefined;
    }
    if (out === undefined) {
      this.settled += batch.length;
      if (this.batch.length > 0) this.immediate = setImmediate(() => this.flush());
      return;
    }
    this.running = out.then(
      () => this.done(batch.length),
      () => this.done(batch.length),
    );
  }

  private done(n: number): void {
    this.settled += n;
    this.running = null;
    // What queued meanwhile has waited a whole commit already: go now.
    if (this.batch.length > 0) this.flush();
  }
}
