/**
 * An in-memory CommandExecutor for session and agent tests. It records every batch, answers with scripted
 * Results (default: one `success` per action, result `ok:<tool_name>`), can delay or hang until aborted, and
 * tracks how many batches are in flight at once. Like the real one, it rejects only when the signal aborts.
 */
import type { Result } from '../../protocol/index.js';
import type { CommandBatch, CommandExecutor } from '../../src/session/types.js';

export type Responder = (batch: CommandBatch, index: number) => Result[] | Promise<Result[]>;

export interface FakeExecutorOptions {
  respond?: Responder;
  /** Wait this long before answering (ms). */
  delayMs?: number;
  /** Never answer a batch containing one of these tools; reject only when the signal aborts. */
  hangOn?: readonly string[];
  /** Answer a command of this tool with `failure` and this error (the rest of its batch is skipped). */
  failOn?: Readonly<Record<string, string>>;
}

export function success(result: unknown, call_id: string | null = null): Result {
  return { status: 'success', error: null, result, namespace: null, call_id };
}
export function failure(error: string, call_id: string | null = null): Result {
  return { status: 'failure', error, result: null, namespace: null, call_id };
}
export function skipped(call_id: string | null = null): Result {
  return {
    status: 'skipped',
    error: 'Skipped due to previous failure (early_exit=True).',
    result: null,
    namespace: null,
    call_id,
  };
}

export class FakeExecutor implements CommandExecutor {
  /** Every batch received, in order, as received. */
  readonly batches: CommandBatch[] = [];
  /** How many batches were aborted while waiting. */
  aborted = 0;
  inFlight = 0;
  maxInFlight = 0;
  private readonly waiters: { n: number; resolve: () => void }[] = [];

  constructor(private readonly options: FakeExecutorOptions = {}) {}

  /** Resolves once at least `n` batches have been received. */
  waitForBatches(n: number): Promise<void> {
    if (this.batches.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  execute(batch: CommandBatch, signal: AbortSignal): Promise<Result[]> {
    const index = this.batches.length;
    this.batches.push(batch);
    for (const w of this.waiters.filter((x) => this.batches.length >= x.n)) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve();
    }
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise<Result[]>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        this.inFlight--;
        signal.removeEventListener('abort', onAbort);
        clearTimeout(timer);
      };
      const onAbort = (): void => {
        this.aborted++;
        done();
        reject(new Error('aborted'));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      if (batch.actions.some((a) => this.options.hangOn?.includes(a.tool_name))) return;
      const answer = (): void => {
        Promise.resolve(this.answer(batch, index)).then(
          (r) => {
            if (signal.aborted) return;
            done();
            resolve(r);
          },
          (e: unknown) => {
            done();
            reject(e instanceof Error ? e : new Error(String(e)));
          },
        );
      };
      if (this.options.delayMs) timer = setTimeout(answer, this.options.delayMs);
      else answer();
    });
  }

  private answer(batch: CommandBatch, index: number): Result[] | Promise<Result[]> {
    if (this.options.respond) return this.options.respond(batch, index);
    const out: Result[] = [];
    let failed = false;
    for (const a of batch.actions) {
      const call = a.call_id ?? null;
      const err = this.options.failOn?.[a.tool_name];
      if (failed) out.push(skipped(call));
      else if (err !== undefined) {
        failed = true;
        out.push(failure(err, call));
      } else out.push(success(`ok:${a.tool_name}`, call));
    }
    return out;
  }
}
