/**
 * `tasks_status.json`: the resume file of a batch run (ufo-aip.md §9.5). A JSON object mapping each plan to true
 * (done) or false (to run). By default it sits in the plan folder's parent, as in UFO, so sibling plan folders
 * share it.
 *
 * - Keys: opened for a plan folder, a plan is keyed by its folder's path relative to the status file's folder and
 *   its file stem, `<folder>/<stem>` (`A/deploy` for `plans/A/deploy.json` with `plans/tasks_status.json`; `./stem`
 *   when the status file sits in the plan folder). So `plans/A/deploy.json` and `plans/B/deploy.json`, run as
 *   folders or as single files, never share an entry. Opened without a folder, keys are bare stems.
 * - UFO's keys are bare stems (`deploy`, as aipd's were before). Such entries were written for one plan folder; they
 *   are taken to be this run's folder's when its plan files match them best of the folders beside the status file
 *   (by the share of stems in common; the run's folder counts too wherever it is), and then rewritten as this
 *   folder's keys, so a sibling folder never reads them. When another folder matches as well or better, they are
 *   left alone and this folder's plans run.
 *
 * - Missing: created with every plan set to false.
 * - Present: plans marked `true` are skipped; plans it does not list are added as false. Any value other than
 *   `true` counts as not done. A file that is not a JSON object is an error (it is never overwritten).
 * - A plan is set to true only when its session completes; failed and cancelled tasks stay false so a rerun
 *   retries them.
 * - Every write is atomic (write a temporary file in the same folder, then rename) and writes are serialised.
 */
import { randomBytes } from 'node:crypto';
import { readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { listPlanFiles } from '../agents/plan.js';

export const TASK_STATUS_FILE = 'tasks_status.json';

/** `<parent of the plan folder>/tasks_status.json` */
export function defaultStatusPath(planFolder: string): string {
  return join(dirname(resolve(planFolder)), TASK_STATUS_FILE);
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = join(
    dirname(path),
    `.${TASK_STATUS_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
  );
  try {
    await writeFile(tmp, text, 'utf8');
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** The key prefix of `planFolder`'s plans in the status file at `statusPath`: `A/`, `../x/A/`, `./`. */
export function statusKeyPrefix(statusPath: string, planFolder: string): string {
  const rel = relative(dirname(resolve(statusPath)), resolve(planFolder))
    .split(sep)
    .join('/');
  return `${rel || '.'}/`;
}

/** The plan stems of `folder` (none if it cannot be listed), the status file left out. */
async function folderStems(folder: string, statusPath: string): Promise<Set<string>> {
  try {
    const files = await listPlanFiles(folder);
    return new Set(
      files.filter((f) => f.path !== statusPath && basename(f.path) !== TASK_STATUS_FILE).map((f) => f.stem),
    );
  } catch {
    return new Set();
  }
}

/** Share of stems in common (Jaccard index). */
function overlap(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  let common = 0;
  for (const x of a) if (b.has(x)) common++;
  const union = a.size + b.size - common;
  return union === 0 ? 0 : common / union;
}

/**
 * Whether the bare-stem entries `bare` were written for `planFolder`: it shares stems with them, and matches them
 * strictly better than every other folder beside the status file.
 */
async function ownsBareEntries(
  bare: ReadonlySet<string>,
  statusPath: string,
  planFolder: string,
): Promise<boolean> {
  const own = overlap(bare, await folderStems(planFolder, statusPath));
  if (own === 0) return false;
  const dir = dirname(statusPath);
  let entries: string[] = [];
  try {
    entries = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    // no siblings to compare with
  }
  for (const name of entries) {
    const other = join(dir, name);
    if (other === planFolder) continue;
    if (overlap(bare, await folderStems(other, statusPath)) >= own) return false;
  }
  return true;
}

export class TaskStatusFile {
  private chain: Promise<void> = Promise.resolve();

  private constructor(
    readonly path: string,
    private readonly status: Record<string, boolean>,
    /** Put before each stem to make its key. */
    private readonly prefix: string,
  ) {}

  /**
   * Reads the file (creating it when missing) and makes sure every stem in `stems` is listed. With `planFolder`
   * (the folder of the plans the stems name), entries are keyed `<folder>/<stem>`, and bare-stem entries written
   * for that folder are adopted (see the module comment).
   */
  static async open(path: string, stems: readonly string[], planFolder?: string): Promise<TaskStatusFile> {
    const abs = resolve(path);
    const status: Record<string, boolean> = Object.create(null) as Record<string, boolean>;
    let text: string | null = null;
    try {
      text = await readFile(abs, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    let changed = text === null;
    if (text !== null) {
      const value: unknown = JSON.parse(text);
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new Error(`${abs} is not a JSON object of task stems`);
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) status[k] = v === true;
    }
    const prefix = planFolder === undefined ? '' : statusKeyPrefix(abs, planFolder);
    if (planFolder !== undefined) {
      const bare = new Set(Object.keys(status).filter((k) => !k.includes('/')));
      if (bare.size > 0 && (await ownsBareEntries(bare, abs, resolve(planFolder)))) {
        for (const k of bare) {
          status[prefix + k] ??= status[k]!;
          delete status[k];
        }
        changed = true;
      }
    }
    for (const s of stems) {
      if (!(prefix + s in status)) {
        status[prefix + s] = false;
        changed = true;
      }
    }
    const file = new TaskStatusFile(abs, status, prefix);
    if (changed) await file.save();
    return file;
  }

  isDone(stem: string): boolean {
    return this.status[this.prefix + stem] === true;
  }

  snapshot(): Record<string, boolean> {
    return { ...this.status };
  }

  /** Marks `stem` done and writes the file (after any write already under way). */
  markDone(stem: string): Promise<void> {
    this.status[this.prefix + stem] = true;
    return this.save();
  }

  private save(): Promise<void> {
    const text = `${JSON.stringify(this.snapshot(), null, 2)}\n`;
    const next = this.chain.then(() => writeAtomic(this.path, text));
    this.chain = next.catch(() => undefined);
    return next;
  }
}
