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
 * - the step that runs one plan is pluggable: by default a local session through `executorFor`; with a `runner`
 *   (e.g. `aipd batch`, which runs each plan as a task on a remote aipd) the pool still applies its concurrency
 *   limit and the status-file resume, and the runner reports each task's outcome.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { Logger } from 'pino';
import { listPlanFiles, type PlanFileEntry } from '../agents/plan.js';
import { PLAN_AGENT_NAME, PlanAgent } from '../agents/plan-agent.js';
import { SessionFactory } from './factory.js';
import type { Session } from './session.js';
import { TaskStatusFile, defaultStatusPath } from './task-status.js';
import type { CommandExecutor, SessionState, TaskOutcome } from './types.js';

export interface SessionPoolOptions {
  /** At most this many sessions run at once. Must be ≥ 1. */
  concurrency: number;
  /** The executor each session sends its batches to. Without it, sessions are cancelled (use a folder `runner`). */
  executorFor?: (session: Session) => CommandExecutor;
  factory?: SessionFactory;
  logger?: Logger;
}

export interface PoolTaskOutcome {
  sessionId: string;
  taskName: string;
  state: SessionState;
  outcome: TaskOutcome;
}

/** One plan file of a folder run, as handed to a `runner`. */
export interface PlanTask {
  stem: string;
  /** Absolute path of the plan file. */
  path: string;
  /** Position among the run's plan files (skipped ones included), 0-based. */
  index: number;
  /** `"<folder name>/<stem>"` */
  taskName: string;
  /** The file's text. */
  request: string;
  /** From `sessionIdFor`, else a fresh uuid4 (a remote runner may let its server pick instead). */
  sessionId: string;
}

/**
 * Runs one plan task and resolves with its outcome; called once the task has a concurrency slot. A rejection
 * counts as a failed task with the rejection's message.
 */
export type PlanTaskRunner = (task: PlanTask) => Promise<PoolTaskOutcome>;

export interface FolderRunOptions {
  folder: string;
  mode: 'follower' | 'batch_normal';
  /** The platform of the local sessions; required unless `runner` is given. */
  platform?: string;
  /** Resume file. Default for batch_normal: `<parent of folder>/tasks_status.json`; follower: none. */
  statusFile?: string;
  /** Session id per plan file; default a fresh uuid4. */
  sessionIdFor?: (stem: string, index: number) => string;
  /** The plan files to run (each inside `folder`); default every plan file of the folder (`listPlanFiles`). */
  files?: readonly PlanFileEntry[];
  /** Runs each plan instead of a local session; still limited by the pool's concurrency. */
  runner?: PlanTaskRunner;
  /** Called for each plan file the status file marks done, before anything runs. */
  onSkipped?: (stem: string, index: number) => void;
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
  private readonly executorFor: ((session: Session) => CommandExecutor) | undefined;
  private readonly slots: Slots;
  private readonly live = new Set<Session>();
  /** Sessions handed to `run` that have not ended yet (waiting for a slot or running). */
  private readonly queued = new Set<Session>();
  /** Runner tasks (folder runs with a `runner`) currently running. */
  private runnerTasks = 0;
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

  /** Sessions (and runner tasks) currently running. */
  get active(): number {
    return this.live.size + this.runnerTasks;
  }

  /** Runs every session (at most `concurrency` at once) and resolves with their outcomes in input order. */
  run(
    sessions: readonly Session[],
    onDone?: (s: Session, o: TaskOutcome) => Promise<void> | void,
  ): Promise<PoolTaskOutcome[]> {
    return Promise.all(sessions.map((s) => this.runOne(s, onDone)));
  }

  /** Cancels every running or queued session of this pool; returns how many were cancelled. */
  cancelAll(reason: string): number {
    let n = 0;
    for (const s of this.queued) if (s.cancel(reason)) n++;
    return n;
  }

  private async runOne(
    session: Session,
    onDone?: (s: Session, o: TaskOutcome) => Promise<void> | void,
  ): Promise<PoolTaskOutcome> {
    this.queued.add(session);
    await this.slots.acquire();
    this.live.add(session);
    let outcome: TaskOutcome;
    try {
      let executor: CommandExecutor | null = null;
      try {
        if (!this.executorFor) throw new Error('No executor is configured for this pool');
        executor = this.executorFor(session);
      } catch (e) {
        session.cancel(e instanceof Error ? e.message : String(e));
      }
      outcome = executor
        ? await session.run(executor)
        : await session.run({ execute: () => Promise.resolve([]) });
    } finally {
      this.live.delete(session);
      this.queued.delete(session);
      this.slots.release();
    }
    if (onDone) await onDone(session, outcome);
    return { sessionId: session.id, taskName: session.taskName, state: session.state, outcome };
  }

  /** Runs one runner task in a slot; a rejection becomes a failed outcome. */
  private async runTask(task: PlanTask, runner: PlanTaskRunner): Promise<PoolTaskOutcome> {
    await this.slots.acquire();
    this.runnerTasks++;
    try {
      return await runner(task);
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      return {
        sessionId: task.sessionId,
        taskName: task.taskName,
        state: 'failed',
        outcome: { status: 'failed', result: null, error },
      };
    } finally {
      this.runnerTasks--;
      this.slots.release();
    }
  }

  /**
   * Runs a folder of plan files in `follower` or `batch_normal` mode. Without a `runner`, throws
   * MODE/PLATFORM_NOT_SUPPORTED up front.
   */
  async runFolder(options: FolderRunOptions): Promise<FolderRunReport> {
    const folder = resolve(options.folder);
    const folderName = basename(folder);
    const files = options.files ? [...options.files] : await listPlanFiles(folder);
    const statusPath =
      options.statusFile !== undefined
        ? resolve(options.statusFile)
        : options.mode === 'batch_normal'
          ? defaultStatusPath(folder)
          : null;
    const stems = files.map((f) => f.stem);
    const status = statusPath ? await TaskStatusFile.open(statusPath, stems, folder) : null;
    const runner = options.runner;
    if (!runner && options.platform === undefined)
      throw new TypeError('runFolder needs a platform, or a runner');
    const agent = runner ? null : (this.factory.agents.get(PLAN_AGENT_NAME) ?? new PlanAgent());
    const skipped: string[] = [];
    const tasks: PlanTask[] = [];
    const sessions: Session[] = [];
    for (const [index, f] of files.entries()) {
      if (status?.isDone(f.stem)) {
        skipped.push(f.stem);
        options.onSkipped?.(f.stem, index);
        continue;
      }
      const task: PlanTask = {
        stem: f.stem,
        path: f.path,
        index,
        taskName: `${folderName}/${f.stem}`,
        request: await readFile(f.path, 'utf8'),
        sessionId: options.sessionIdFor ? options.sessionIdFor(f.stem, index) : randomUUID(),
      };
      tasks.push(task);
      if (agent) {
        sessions.push(
          this.factory.create({
            mode: options.mode,
            platform: options.platform!,
            sessionId: task.sessionId,
            taskName: task.taskName,
            request: task.request,
            agent,
          }),
        );
      }
    }
    const statusErrors: string[] = [];
    const markDone = async (stem: string, o: TaskOutcome): Promise<void> => {
      if (!status || o.status !== 'completed') return;
      try {
        await status.markDone(stem);
      } catch (e) {
        const msg = `${stem}: ${e instanceof Error ? e.message : String(e)}`;
        statusErrors.push(msg);
        this.logger?.warn({ stem, err: msg }, 'could not update tasks_status.json');
      }
    };
    let outcomes: PoolTaskOutcome[];
    if (runner) {
      outcomes = await Promise.all(
        tasks.map(async (t) => {
          const o = await this.runTask(t, runner);
          await markDone(t.stem, o.outcome);
          return o;
        }),
      );
    } else {
      const stemOf = new Map(sessions.map((s, i) => [s, tasks[i]!.stem]));
      outcomes = await this.run(sessions, async (s, o) => {
        const stem = stemOf.get(s);
        if (stem !== undefined) await markDone(stem, o);
      });
    }
    return {
      outcomes: outcomes.map((o, i) => ({ ...o, stem: tasks[i]!.stem })),
      skipped,
      statusFile: status?.path ?? null,
      statusErrors,
    };
  }
}
