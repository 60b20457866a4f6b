/**
 * The flags of `aipd batch` (see batch.ts): its usage text, their parsing and checks into BatchOptions, and the
 * client id a run registers as when `--client-id` is not given.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_RESUME_WAIT_MS } from '../client/index.js';

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
