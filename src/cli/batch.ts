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
 *
 * The flags are parsed in batch-args.ts, the plan files found in batch-plans.ts, and the summary written by
 * batch-report.ts; this module connects, runs the plans and reports each task.
 */
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AipControllerClient } from '../client/index.js';
import { SessionPool, type PlanTask, type PoolTaskOutcome } from '../session/pool.js';
import { TASK_STATUS_FILE, defaultStatusPath } from '../session/task-status.js';
import { BATCH_USAGE, batchClientId, parseBatchArgs, type BatchOptions } from './batch-args.js';
import { findBatchPlans, safeTaskName } from './batch-plans.js';
import { batchSummary, duration, oneLine, type Row } from './batch-report.js';

export {
  BATCH_MODES,
  BATCH_USAGE,
  DEFAULT_URL,
  MAX_CONCURRENCY,
  batchClientId,
  parseBatchArgs,
  type BatchMode,
  type BatchOptions,
  type ParsedBatchArgs,
} from './batch-args.js';
export { findBatchPlans, type BatchPlans } from './batch-plans.js';

/** Texts of the server's errors that mean the device is gone (protocol/errors.ts). */
const DEVICE_GONE = [
  /Target device '.*' is not connected/,
  /Device '.*' is not connected/,
  /because target device disconnected/,
];
const isDeviceGone = (text: string | null | undefined): boolean =>
  !!text && DEVICE_GONE.some((re) => re.test(text));

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
        rows.set(stem, {
          file,
          status: 'skipped',
          ms: null,
          detail: `done in ${basename(statusPath ?? TASK_STATUS_FILE)}`,
        });
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

  const { text, failed, notRun } = batchSummary(o, plans.files, rows, elapsed, report.statusFile);
  io.stdout(text);
  for (const e of report.statusErrors) io.stderr(`aipd: warning: could not update the status file: ${e}\n`);
  if (halt.reason !== null) {
    io.stderr(
      `aipd: ${halt.deviceGone ? '' : 'stopped: '}${halt.reason}${notRun ? `; ${notRun} plan${notRun === 1 ? ' was' : 's were'} not run` : ''}\n`,
    );
  }
  return failed === 0 && notRun === 0 ? 0 : 1;
}
