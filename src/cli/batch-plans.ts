/**
 * The plan files of an `aipd batch` run (see batch.ts): finding them for `--plan` and checking each is a plan, and
 * the task name a plan's name becomes.
 */
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { listPlanFiles, loadPlanFile, type PlanFileEntry } from '../agents/plan.js';
import { TASK_STATUS_FILE } from '../session/task-status.js';

/** The plan files of a run: a folder's, or one file. */
export interface BatchPlans {
  folder: string;
  files: PlanFileEntry[];
}

function errCode(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : e instanceof Error ? e.message : String(e);
}

/**
 * Finds the plan files of `--plan` and checks each is a plan. Resolves with them, or with a one-line error.
 * In a folder, `tasks_status.json` and the status file in use are not plans and are left out.
 */
export async function findBatchPlans(
  plan: string,
  statusFile?: string,
): Promise<BatchPlans | { error: string }> {
  let folder: string;
  let files: PlanFileEntry[];
  try {
    const st = await stat(plan);
    if (st.isDirectory()) {
      folder = plan;
      files = (await listPlanFiles(plan)).filter(
        (f) => basename(f.path) !== TASK_STATUS_FILE && f.path !== statusFile,
      );
      if (files.length === 0) return { error: `--plan: no plan files (*.json) in ${plan}` };
    } else if (st.isFile()) {
      folder = dirname(plan);
      const name = basename(plan);
      const stem = name.toLowerCase().endsWith('.json') && name.length > 5 ? name.slice(0, -5) : name;
      files = [{ stem, path: plan }];
    } else {
      return { error: `--plan: not a file or folder: ${plan}` };
    }
  } catch (e) {
    const code = errCode(e);
    return {
      error:
        code === 'ENOENT' || code === 'ENOTDIR'
          ? `--plan: no such file or folder: ${plan}`
          : `--plan: cannot read '${plan}': ${code}`,
    };
  }
  const bad: string[] = [];
  for (const f of files) {
    try {
      const r = await loadPlanFile(f.path);
      if (!r.ok) bad.push(`${f.path} (${r.error.message})`);
    } catch (e) {
      bad.push(`${f.path} (cannot read: ${errCode(e)})`);
    }
  }
  if (bad.length === 1) return { error: `not a plan: ${bad[0]!}` };
  if (bad.length > 1) return { error: `${bad.length} files are not plans: ${bad.join('; ')}` };
  return { folder, files };
}

/** `plans/a` → `plans_a` (the characters the server keeps in a task_name). */
export function safeTaskName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '') || 'plan';
}
