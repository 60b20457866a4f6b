/**
 * `aipd batch`: runs a plan file, or every `*.json` plan file of a folder, as AIP tasks on one device of a
 * running aipd, the way UFO's `follower` / `batch_normal` modes run a folder of plans (ufo-aip.md §9.5).
 *
 *   aipd batch --target DEVICE --mode follower|batch_normal --plan FILE_OR_FOLDER [--concurrency N]
 *              [--status-file F] [--url ws://HOST:PORT/ws] [--token KEY] [--client-id ID] [--resume-wait-ms MS]
 *
 * - It connects as a constellation (controller) client for DEVICE and sends one `task` per plan: `request` is the
 *   plan file's text, `task_name` is `<folder name>_<file stem>`, `metadata` is `{ "mode": MODE }`.
 * - Scheduling and resume are SessionPool's (`runFolder` with a runner): at most `--concurrency` tasks at once
 *   (default 1, in file-name order); `batch_normal` resumes from `tasks_status.json` (default: next to the plan
 *   folder, in its parent, as TaskStatusFile places it), skipping plans already marked done and marking each
 *   completed one; `follower` runs every plan and keeps no status file unless `--status-file` is given.
 * - A dropped connection does not end the run: it reconnects with backoff as the same client id, which is derived
 *   from the status file (or, without one, the plan path) and the device unless `--client-id` is given, so a server
 *   that restarted and resumed a task hands its `task_end` over and the status file records it. A task whose
 *   `task_end` has not come within `--resume-wait-ms` of the drop fails, and plans not yet sent then are not run.
 * - Progress on stderr (one line per task start and end), a summary table and totals on stdout.
 * - Exit code 0 when every plan completed (or was skipped as done), 1 when any failed or did not run, 2 for usage
 *   and configuration errors (one line): missing or bad flags, a missing plan file or folder, a file that is not a
 *   plan, an unreachable server, a refused token, or a device that is not connected.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { listPlanFiles, loadPlanFile, type PlanFileEntry } from '../agents/plan.js';
import { AipControllerClient, DEFAULT_RESUME_WAIT_MS } from '../client/index.js';
import { SessionPool, type PlanTask, type PoolTaskOutcome } from '../session/pool.js';
import { TASK_STATUS_FILE, defaultStatusPath } from '../session/task-status.js';

export const BATCH_MODES = ['follower', 'batch_normal'] as const;
export type BatchMode = (typeof BATCH_MODES)[number];

export const BATCH_USAGE = `usage: aipd batch --target DEVICE --mode follower|batch_normal --plan FILE_OR_FOLDER
                  [--concurrency N] [--status-file F] [--url ws://HOST:PORT/ws] [--token KEY] [--client-id ID]
                  [--resume-wait-ms MS]
  --url defaults to $AIPD_URL, else ws://127.0.0.1:5000/ws; --token to ?token= in --url, $AIPD_TOKEN, $AIPD_API_KEY
  --client-id defaults to batch-<hash of the status file, else the plan path>@DEVICE (the same on every run)
  --resume-wait-ms: after a dropped connection, how long (from the drop) it reconnects and waits for the tasks in
  flight (default ${DEFAULT_RESUME_WAIT_MS})`;

export const DEFAULT_URL = 'ws://127.0.0.1:5000/ws';
export const MAX_CONCURRENCY = 1000;

export interface BatchOptions {
  /** Server URL without its `token` parameter (safe to print). */
  url: string;
  token: string;
  target: string;
  mode: BatchMode;
  /** Absolute path of the plan file or folder. */
  plan: string;
  concurrency: number;
  /** Absolute path, when given. */
  statusFile?: string;
  /** When given; else `batchClientId` derives one. */
  clientId?: string;
  /** How long after a dropped connection the run reconnects and waits for its tasks in flight. */
  resumeWaitMs: number;
}

export type ParsedBatchArgs =
  { ok: true; options: BatchOptions } | { ok: true; help: true } | { ok: false; error: string };

/** Parses and validates the flags (nothing is read from disk or the network); never throws. */
export function parseBatchArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): ParsedBatchArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        target: { type: 'string' },
        mode: { type: 'string' },
        plan: { type: 'string' },
        concurrency: { type: 'string' },
        'status-file': { type: 'string' },
        url: { type: 'string' },
        token: { type: 'string' },
        'client-id': { type: 'string' },
        'resume-wait-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    return { ok: false, error: text.split('\n')[0]! };
  }
  if (values.help) return { ok: true, help: true };
  const str = (k: string): string | undefined => {
    const v = values[k];
    return typeof v === 'string' ? v : undefined;
  };

  const target = str('target');
  if (!target) return { ok: false, error: "--target: required (the device's client_id)" };
  const mode = str('mode');
  if (mode === undefined) return { ok: false, error: '--mode: required (follower or batch_normal)' };
  if (!(BATCH_MODES as readonly string[]).includes(mode))
    return { ok: false, error: `--mode: expected follower or batch_normal, got ${JSON.stringify(mode)}` };
  const plan = str('plan');
  if (!plan) return { ok: false, error: '--plan: required (a plan file, or a folder of *.json plan files)' };

  let concurrency = 1;
  const rawConcurrency = str('concurrency');
  if (rawConcurrency !== undefined) {
    concurrency = /^\d+$/.test(rawConcurrency) ? Number(rawConcurrency) : NaN;
    if (!(concurrency >= 1 && concurrency <= MAX_CONCURRENCY))
      return {
        ok: false,
        error: `--concurrency: expected an integer from 1 to ${MAX_CONCURRENCY}, got ${JSON.stringify(rawConcurrency)}`,
      };
  }

  const rawUrl = str('url') ?? (env.AIPD_URL || DEFAULT_URL);
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return { ok: false, error: `--url: not a valid URL: ${JSON.stringify(rawUrl)}` };
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:')
    return {
      ok: false,
      error: `--url: expected ws://HOST:PORT/ws or wss://..., got ${JSON.stringify(rawUrl)}`,
    };
  const token =
    str('token') ??
    (url.searchParams.get('token') || undefined) ??
    (env.AIPD_TOKEN || undefined) ??
    (env.AIPD_API_KEY || undefined);
  if (!token)
    return {
      ok: false,
      error: '--token: required (the server API key; or ?token= in --url, or $AIPD_TOKEN)',
    };
  url.searchParams.delete('token');

  let resumeWaitMs = DEFAULT_RESUME_WAIT_MS;
  const rawResumeWait = str('resume-wait-ms');
  if (rawResumeWait !== undefined) {
    resumeWaitMs = /^\d+$/.test(rawResumeWait) ? Number(rawResumeWait) : NaN;
    if (!Number.isSafeInteger(resumeWaitMs))
      return {
        ok: false,
        error: `--resume-wait-ms: expected a whole number of milliseconds, got ${JSON.stringify(rawResumeWait)}`,
      };
  }

  const statusFile = str('status-file');
  const clientId = str('client-id');
  return {
    ok: true,
    options: {
      url: url.toString(),
      token,
      target,
      mode: mode as BatchMode,
      plan: resolve(plan),
      concurrency,
      ...(statusFile ? { statusFile: resolve(statusFile) } : {}),
      ...(clientId ? { clientId } : {}),
      resumeWaitMs,
    },
  };
}

/**
 * The client id of a run without `--client-id`: `batch-<8 hex>@DEVICE`, the hex from the absolute path of the status
 * file (else of the plan file or folder). Every run of the same plans on the same device registers as the same
 * client, so a reconnecting run is the requester the server kept, and a second run on the same status file at the
 * same time is refused (client_id already registered) instead of racing the first on that file.
 */
export function batchClientId(target: string, statusOrPlanPath: string): string {
  const hex = createHash('sha256').update(resolve(statusOrPlanPath)).digest('hex').slice(0, 8);
  return `batch-${hex}@${target}`;
}

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

/** Texts of the server's errors that mean the device is gone (protocol/errors.ts). */
const DEVICE_GONE = [
  /Target device '.*' is not connected/,
  /Device '.*' is not connected/,
  /because target device disconnected/,
];
const isDeviceGone = (text: string | null | undefined): boolean =>
  !!text && DEVICE_GONE.some((re) => re.test(text));

/** `plans/a` → `plans_a` (the characters the server keeps in a task_name). */
function safeTaskName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '') || 'plan';
}

/** `850 ms`, `1.2 s` */
const duration = (ms: number): string => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);
const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ');

type RowStatus = 'completed' | 'failed' | 'skipped' | 'not run';
interface Row {
  file: string;
  status: RowStatus;
  ms: number | null;
  detail: string;
}

export interface BatchIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

const processIo: BatchIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
};

function connectError(err: unknown, o: BatchOptions): string {
  const msg = err instanceof Error ? err.message : String(err);
  if (isDeviceGone(msg)) return `device '${o.target}' is not connected to ${o.url} (server: ${msg})`;
  const m = /Unexpected server response: (\d+)/.exec(msg);
  if (m?.[1] === '403') return `${o.url} refused the token (HTTP 403); check --token`;
  if (m) return `${o.url} refused the WebSocket connection (HTTP ${m[1]}); is it an aipd /ws endpoint?`;
  if (
    /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EAI_AGAIN|timed out|socket hang up/i.test(msg)
  )
    return `cannot reach the server at ${o.url}: ${msg}`;
  return `could not register with ${o.url}: ${msg}`;
}

/** `aipd batch`; resolves with the exit code. */
export async function runBatch(argv: string[], io: BatchIo = processIo): Promise<number> {
  const usageError = (text: string): number => {
    io.stderr(`aipd: ${oneLine(text)}\n`);
    return 2;
  };
  const parsed = parseBatchArgs(argv, io.env);
  if (!parsed.ok) return usageError(parsed.error);
  if ('help' in parsed) {
    io.stdout(`${BATCH_USAGE}\n`);
    return 0;
  }
  const o = parsed.options;
  const plans = await findBatchPlans(o.plan, o.statusFile);
  if ('error' in plans) return usageError(plans.error);

  const statusPath = o.statusFile ?? (o.mode === 'batch_normal' ? defaultStatusPath(plans.folder) : null);
  const clientId = o.clientId ?? batchClientId(o.target, statusPath ?? o.plan);
  const client = new AipControllerClient({
    url: o.url,
    token: o.token,
    clientId,
    targetId: o.target,
    resumeWaitMs: o.resumeWaitMs,
    // Unbounded retries: the tasks in flight are bounded by resumeWaitMs, and so is the wait for plans not yet sent.
    reconnect: {},
  });
  try {
    await client.connect();
  } catch (err) {
    await client.close().catch(() => undefined);
    return usageError(connectError(err, o));
  }

  const total = plans.files.length;
  const fileName = new Map(plans.files.map((f) => [f.stem, basename(f.path)]));
  const rows = new Map<string, Row>();
  const tag = (index: number): string => `[${index + 1}/${total}]`;
  /** Why the remaining plans are not sent (device gone, connection lost, interrupted); null while all is well. */
  const halt: { reason: string | null; deviceGone: boolean } = { reason: null, deviceGone: false };
  const stop = (why: string, deviceGone = false): void => {
    if (halt.reason !== null) return;
    halt.reason = why;
    halt.deviceGone = deviceGone;
  };
  let finished = false;
  /** Since when the connection is down while it reconnects; null while registered. */
  let downSince: number | null = null;
  const lost = (code: number, reason: string): string =>
    `lost the connection to ${o.url} (code ${code}${reason ? `: ${reason}` : ''})`;
  client.on('disconnected', (info) => {
    if (finished) return;
    if (!info.willReconnect) return stop(lost(info.code, info.reason));
    downSince ??= Date.now();
    io.stderr(
      `aipd: ${lost(info.code, info.reason)}; reconnecting as ${clientId}, waiting up to ${duration(o.resumeWaitMs)} for the tasks in flight\n`,
    );
  });
  client.on('registered', ({ reconnected }) => {
    downSince = null;
    if (reconnected && !finished) io.stderr(`aipd: registered again with ${o.url}\n`);
  });
  /** Resolves true once registered, false if the connection has not come back within resumeWaitMs of the drop. */
  const connected = (): Promise<boolean> => {
    if (client.connected) return Promise.resolve(true);
    const since = downSince ?? Date.now();
    return new Promise<boolean>((done) => {
      const settle = (ok: boolean): void => {
        clearTimeout(timer);
        client.off('registered', onRegistered);
        client.off('disconnected', onClosed);
        done(ok);
      };
      const onRegistered = (): void => settle(true);
      const onClosed = (info: { willReconnect: boolean }): void => {
        if (!info.willReconnect) settle(false);
      };
      const timer = setTimeout(
        () => {
          stop(`lost the connection to ${o.url} and it did not come back within ${duration(o.resumeWaitMs)}`);
          settle(false);
        },
        Math.max(0, since + o.resumeWaitMs - Date.now()),
      );
      client.on('registered', onRegistered);
      client.on('disconnected', onClosed);
    });
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    stop(`interrupted (${signal})`);
    void client.close();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const runner = async (task: PlanTask): Promise<PoolTaskOutcome> => {
    const file = fileName.get(task.stem) ?? task.stem;
    const finish = (
      status: 'completed' | 'failed' | 'not run',
      ms: number | null,
      error: string | null,
      sessionId: string,
      result: unknown = null,
    ): PoolTaskOutcome => {
      rows.set(task.stem, { file, status, ms, detail: error ? oneLine(error) : '' });
      if (status === 'not run') io.stderr(`${tag(task.index)} ${file} not run: ${halt.reason ?? ''}\n`);
      else
        io.stderr(
          `${tag(task.index)} ${file} ${status} (${duration(ms ?? 0)})${error ? `: ${oneLine(error)}` : ''}\n`,
        );
      return {
        sessionId,
        taskName: task.taskName,
        state: status === 'completed' ? 'completed' : status === 'failed' ? 'failed' : 'cancelled',
        outcome: { status: status === 'completed' ? 'completed' : 'failed', result, error },
      };
    };
    if (halt.reason !== null || !(await connected()))
      return finish('not run', null, `not run: ${halt.reason ?? ''}`, task.sessionId);
    const t0 = performance.now();
    let sessionId = task.sessionId;
    try {
      ({ sessionId } = await client.requestTask({
        request: task.request,
        taskName: safeTaskName(task.taskName),
        sessionId: task.sessionId,
        metadata: { mode: o.mode },
      }));
      io.stderr(`${tag(task.index)} ${file} started (session ${sessionId})\n`);
      const end = await client.waitTaskEnd(sessionId);
      const ms = performance.now() - t0;
      if (end.status === 'completed') return finish('completed', ms, null, sessionId, end.result);
      const error = end.error ?? `task ended ${end.status}`;
      if (isDeviceGone(error)) stop(`device '${o.target}' went offline`, true);
      return finish('failed', ms, error, sessionId, end.result);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      if (isDeviceGone(error)) stop(`device '${o.target}' went offline (server: ${error})`, true);
      return finish('failed', performance.now() - t0, error, sessionId);
    }
  };

  const t0 = performance.now();
  let report;
  try {
    report = await new SessionPool({ concurrency: o.concurrency }).runFolder({
      folder: plans.folder,
      files: plans.files,
      mode: o.mode,
      ...(o.statusFile ? { statusFile: o.statusFile } : {}),
      runner,
      onSkipped: (stem, index) => {
        const file = fileName.get(stem) ?? stem;
        rows.set(stem, { file, status: 'skipped', ms: null, detail: `done in ${TASK_STATUS_FILE}` });
        io.stderr(`${tag(index)} ${file} skipped (already completed in ${statusPath ?? TASK_STATUS_FILE})\n`);
      },
    });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    return usageError(statusPath && !msg.includes(statusPath) ? `status file ${statusPath}: ${msg}` : msg);
  } finally {
    finished = true;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await client.close().catch(() => undefined);
  }
  const elapsed = performance.now() - t0;

  // Summary: one row per plan in file order, then the totals.
  const ordered = plans.files.map((f) => rows.get(f.stem)).filter((r): r is Row => r !== undefined);
  const count = (s: RowStatus): number => ordered.filter((r) => r.status === s).length;
  const table: string[][] = [
    ['plan', 'result', 'time', 'detail'],
    ...ordered.map((r) => [r.file, r.status, r.ms === null ? '-' : duration(r.ms), r.detail]),
  ];
  const widths = [0, 1, 2].map((c) => Math.max(...table.map((row) => row[c]!.length)));
  let out = '';
  for (const row of table)
    out += `${row
      .map((cell, c) => (c < 3 ? cell.padEnd(widths[c]!) : cell))
      .join('  ')
      .trimEnd()}\n`;
  const completed = count('completed');
  const failed = count('failed');
  const skipped = count('skipped');
  const notRun = count('not run');
  out +=
    `batch ${o.mode} on ${o.target}: ${total} plan${total === 1 ? '' : 's'}, ${completed} completed, ${failed} failed, ` +
    `${skipped} skipped${notRun ? `, ${notRun} not run` : ''} in ${duration(elapsed)}\n`;
  if (report.statusFile) out += `status file: ${report.statusFile}\n`;
  io.stdout(out);
  for (const e of report.statusErrors) io.stderr(`aipd: warning: could not update the status file: ${e}\n`);
  if (halt.reason !== null) {
    io.stderr(
      `aipd: ${halt.deviceGone ? '' : 'stopped: '}${halt.reason}${notRun ? `; ${notRun} plan${notRun === 1 ? ' was' : 's were'} not run` : ''}\n`,
    );
  }
  return failed === 0 && notRun === 0 ? 0 : 1;
}
