/**
 * SessionPool: runs sessions with at most `concurrency` of them running at once (pool-wide, across calls),
 * and runs the follower / batch_normal modes over a folder of `*.json` plan files (ufo-aip.md §9.5).
 *
 * Folder runs:
 * - one session per plan file directly in the folder (sorted by name), task name `"<folder name>/<file stem>"`,
 *   request = the file's text, agent = the `plan` agent;
 * - `batch_normal` resumes from `tasks_status.json` (see task-status.ts): stems already `true` are skipped, and a
 *   stem is set `true` when its session completes (failed ones stay false). `follower` runs every file and
 *   keeps no status file unless `statusFile` is given;
 * - works on every platform the factory supports for the mode.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { Logger } from 'pino';
import { listPlanFiles } from '../agents/plan.js';
import { PLAN_AGENT_NAME, PlanAgent } from '../agents/plan-agent.js';
import { SessionFactory } from './factory.js';
import type { Session } from './session.js';
import { TaskStatusFile, defaultStatusPath } from './task-status.js';
import type { CommandExecutor, SessionState, TaskOutcome } from './types.js';

export interface SessionPoolOptions {
  /** At most this many sessions run at once. Must be ≥ 1. */
  concurrency: number;
  /** The executor each session sends its batches to. */
  executorFor: (session: Session) => CommandExecutor;
  factory?: SessionFactory;
  logger?: Logger;
}

export interface PoolTaskOutcome {
  sessionId: string;
  taskName: string;
  state: SessionState;
  outcome: TaskOutcome;
}

export interface FolderRunOptions {
  folder: string;
  mode: 'follower' | 'batch_normal';
  platform: string;
  /** Resume file. Default for batch_normal: `<parent of folder>/tasks_status.json`; follower: none. */
  statusFile?: string;
  /** Session id per plan file; default a fresh uuid4. */
  sessionIdFor?: (stem: string, index: number) => string;
}

export interface FolderRunReport {
  /** One per plan file that ran, in file-name order. */
  outcomes: (PoolTaskOutcome & { stem: string })[];
  /** Stems skipped because the status file marks them done. */
  skipped: string[];
  /** Absolute path of the status file used, or null. */
  statusFile: string | null;
  /** Status-file writes that failed (the tasks still ran). */
  statusErrors: string[];
}

/** A counting semaphore. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

export class SessionPool {
  readonly concurrency: number;
  readonly factory: SessionFactory;
  private readonly executorFor: (session: Session) => CommandExecutor;
  private readonly slots: Slots;
  private readonly live = new Set<Session>();
  /** Sessions handed to `run` that have not ended yet (waiting for a slot or running). */
  private readonly queued = new Set<Session>();
  private readonly logger: Logger | undefined;

  constructor(options: SessionPoolOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new RangeError(`concurrency must be an integer ≥ 1, got ${options.concurrency}`);
    }
    this.concurrency = options.concurrency;
    this.executorFor = options.executorFor;
    this.factory = options.factory ?? new SessionFactory();
    this.slots = new Slots(options.concurrency);
    this.logger = options.logger;
  }

  /** Sessions currently running. */
  get active(): number {
    return this.live.size;
  }

  /** Runs every session (at most `concurrency` at once) and resolves with their outcomes in input order. */
  run(sessions: readonly Session[], onDone?: (s: Session, o: TaskOutcome) => Promise<void> | void): Promise<PoolTaskOutcome[]> {
    return Promise.all(sessions.map((s) => this.runOne(s, onDone)));
  }

  /** Cancels every running or queued session of this pool; returns how many were cancelled. */
  cancelAll(reason: string): number {
    let n = 0;
    for (const s of this.queued) if (s.cancel(reason)) n++;
    return n;
  }

  private async runOne(session: Session, onDone?: (s: Session, o: TaskOutcome) => Promise<void> | void): Promise<PoolTaskOutcome> {
    this.queued.add(session);
    await this.slots.acquire();
    this.live.add(session);
    let outcome: TaskOutcome;
    try {
      let executor: CommandExecutor | null = null;
      try {
        executor = this.executorFor(session);
      } catch (e) {
        session.cancel(e instanceof Error ? e.message : String(e));
      }
      outcome = executor ? await session.run(executor) : await session.run({ execute: () => Promise.resolve([]) });
    } finally {
      this.live.delete(session);
      this.queued.delete(session);
      this.slots.release();
    }
    if (onDone) await onDone(session, outcome);
    return { sessionId: session.id, taskName: session.taskName, state: session.state, outcome };
  }

  /** Runs a folder of plan files in `follower` or `batch_normal` mode. Throws MODE/PLATFORM_NOT_SUPPORTED up front. */
  async runFolder(options: FolderRunOptions): Promise<FolderRunReport> {
    const folder = resolve(options.folder);
    const folderName = basename(folder);
    const files = await listPlanFiles(folder);
    const statusPath =
      options.statusFile !== undefined ? resolve(options.statusFile) : options.mode === 'batch_normal' ? defaultStatusPath(folder) : null;
    const status = statusPath ? await TaskStatusFile.open(statusPath, files.map((f) => f.stem)) : null;
    const agent = this.factory.agents.get(PLAN_AGENT_NAME) ?? new PlanAgent();
    const skipped: string[] = [];
    const jobs: { stem: string; session: Session }[] = [];
    for (const [index, f] of files.entries()) {
      if (status?.isDone(f.stem)) {
        skipped.push(f.stem);
        continue;
      }
      const session = this.factory.create({
        mode: options.mode,
        platform: options.platform,
        sessionId: options.sessionIdFor ? options.sessionIdFor(f.stem, index) : randomUUID(),
        taskName: `${folderName}/${f.stem}`,
        request: await readFile(f.path, 'utf8'),
        agent,
      });
      jobs.push({ stem: f.stem, session });
    }
    const stemOf = new Map(jobs.map((j) => [j.session, j.stem]));
    const statusErrors: string[] = [];
    const markDone = async (s: Session, o: TaskOutcome): Promise<void> => {
      const stem = stemOf.get(s);
      if (!status || stem === undefined || o.status !== 'completed') return;
      try {
        await status.markDone(stem);
      } catch (e) {
        const msg = `${stem}: ${e instanceof Error ? e.message : String(e)}`;
        statusErrors.push(msg);
        this.logger?.warn({ stem, err: msg }, 'could not update tasks_status.json');
      }
    };
    const outcomes = await this.run(
      jobs.map((j) => j.session),
      markDone,
    );
    return {
      outcomes: outcomes.map((o, i) => ({ ...o, stem: jobs[i]!.stem })),
      skipped,
      statusFile: status?.path ?? null,
      statusErrors,
    };
  }
}
