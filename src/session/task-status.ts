/**
 * `tasks_status.json`: the resume file of a batch run (ufo-aip.md §9.5). A JSON object mapping each plan
 * file stem to true (done) or false (to run). By default it sits in the plan folder's parent.
 *
 * - Missing: created with every stem set to false.
 * - Present: stems marked `true` are skipped; stems it does not list are added as false. Any value other than
 *   `true` counts as not done. A file that is not a JSON object is an error (it is never overwritten).
 * - A stem is set to true only when its session completes; failed and cancelled tasks stay false so a rerun
 *   retries them.
 * - Every write is atomic (write a temporary file in the same folder, then rename) and writes are serialised.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

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

export class TaskStatusFile {
  private chain: Promise<void> = Promise.resolve();

  private constructor(
    readonly path: string,
    private readonly status: Record<string, boolean>,
  ) {}

  /** Reads the file (creating it when missing) and makes sure every stem in `stems` is listed. */
  static async open(path: string, stems: readonly string[]): Promise<TaskStatusFile> {
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
    for (const s of stems) {
      if (!(s in status)) {
        status[s] = false;
        changed = true;
      }
    }
    const file = new TaskStatusFile(abs, status);
    if (changed) await file.save();
    return file;
  }

  isDone(stem: string): boolean {
    return this.status[stem] === true;
  }

  snapshot(): Record<string, boolean> {
    return { ...this.status };
  }

  /** Marks `stem` done and writes the file (after any write already under way). */
  markDone(stem: string): Promise<void> {
    this.status[stem] = true;
    return this.save();
  }

  private save(): Promise<void> {
    const text = `${JSON.stringify(this.snapshot(), null, 2)}\n`;
    const next = this.chain.then(() => writeAtomic(this.path, text));
    this.chain = next.catch(() => undefined);
    return next;
  }
}
