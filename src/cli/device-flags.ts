/** The flags of `aipd device`, checked; a bad one is a ConfigError (exit 2) that names it. */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { Platform } from '../../protocol/index.js';
import { DEFAULT_RESUME_WAIT_MS } from '../client/client-base.js';
import { ConfigError } from '../config.js';

export interface DeviceFlags {
  readonly url: string;
  readonly token: string;
  readonly clientId: string;
  readonly platform: Platform;
  /** Real path of --root. */
  readonly root: string | undefined;
  readonly allowExec: boolean;
  readonly allowPorts: number[];
  readonly logLevel: string;
  /** The text of --plan FILE. */
  readonly plan: string | null;
  /** --resume-wait-ms: with --plan, how long its task_end is awaited after a dropped connection. */
  readonly resumeWaitMs: number;
}

export const DEVICE_FLAGS_HELP = `aipd device: a device agent for an aipd server

  --url URL            server WebSocket URL (default ws://127.0.0.1:5000/ws)
  --token KEY          the server API key (or env AIPD_API_KEY)
  --client-id ID       the device's client_id (default: the host name)
  --platform P         windows | linux | mobile (default: this machine's)
  --root DIR           serve file channels inside DIR, and run commands there (default: no file access)
  --allow-exec         allow stream channels (commands, shells, PTYs) and the execute_command tool
  --allow-port P[,P]   allow port channels to these loopback ports (repeatable; default: none)
  --log-level LEVEL    fatal | error | warn | info | debug | trace | silent (default info); JSON logs on stdout
  --plan FILE          run the plan as this device's own task, print its task_end, and exit
  --resume-wait-ms MS  with --plan: after a dropped connection, keep reconnecting and wait this long (from the
                       drop) for the task_end of the resumed task (default ${DEFAULT_RESUME_WAIT_MS}; 0: give up at the drop)`;

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const PLATFORMS: readonly Platform[] = ['windows', 'linux', 'mobile'];

function parsePorts(values: readonly string[]): number[] {
  const out = new Set<number>();
  for (const v of values)
    for (const part of v.split(',')) {
      const s = part.trim();
      const n = Number(s);
      if (!/^\d+$/.test(s) || n < 1 || n > 65535)
        throw new ConfigError(`--allow-port: '${s}' is not a port (1–65535)`);
      out.add(n);
    }
  return [...out].sort((a, b) => a - b);
}

/** A duration in whole milliseconds, 0 or more. */
function parseMs(flag: string, value: unknown, fallback: number): number {
  if (typeof value !== 'string') return fallback;
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)))
    throw new ConfigError(`${flag}: '${value}' is not a whole number of milliseconds`);
  return Number(value);
}

function parseRoot(dir: string): string {
  try {
    if (statSync(dir).isDirectory()) return realpathSync(dir);
  } catch {
    // reported below
  }
  throw new ConfigError(`--root: '${dir}' is not a directory`);
}

export function parseDeviceFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): DeviceFlags {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: {
        url: { type: 'string', default: 'ws://127.0.0.1:5000/ws' },
        token: { type: 'string' },
        'client-id': { type: 'string' },
        platform: { type: 'string' },
        root: { type: 'string' },
        'allow-exec': { type: 'boolean', default: false },
        'allow-port': { type: 'string', multiple: true, default: [] },
        'log-level': { type: 'string', default: 'info' },
        plan: { type: 'string' },
        'resume-wait-ms': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new ConfigError((err as Error).message.split('\n')[0] ?? 'invalid arguments');
  }
  const url = values.url as string;
  let proto = '';
  try {
    proto = new URL(url).protocol;
  } catch {
    // reported below
  }
  if (proto !== 'ws:' && proto !== 'wss:')
    throw new ConfigError(`--url: '${url}' is not a ws:// or wss:// URL`);
  const token = (values.token as string | undefined) ?? env.AIPD_API_KEY;
  if (!token) throw new ConfigError('--token: required (the server API key), or set AIPD_API_KEY');
  const clientId = (values['client-id'] as string | undefined) ?? os.hostname();
  if (clientId.length === 0) throw new ConfigError('--client-id: must not be empty');
  const platform =
    (values.platform as string | undefined) ?? (process.platform === 'win32' ? 'windows' : 'linux');
  if (!PLATFORMS.includes(platform as Platform))
    throw new ConfigError(`--platform: '${platform}' is not one of windows, linux, mobile`);
  const logLevel = values['log-level'] as string;
  if (!LEVELS.includes(logLevel))
    throw new ConfigError(`--log-level: '${logLevel}' is not one of ${LEVELS.join(', ')}`);
  let plan: string | null = null;
  if (typeof values.plan === 'string') {
    try {
      plan = readFileSync(values.plan, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `--plan: cannot read '${values.plan}': ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
  }
  const resumeWaitMs = parseMs('--resume-wait-ms', values['resume-wait-ms'], DEFAULT_RESUME_WAIT_MS);
  return {
    url,
    token,
    clientId,
    platform: platform as Platform,
    root: typeof values.root === 'string' ? parseRoot(values.root) : undefined,
    allowExec: values['allow-exec'] === true,
    allowPorts: parsePorts(values['allow-port'] as string[]),
    logLevel,
    plan,
    resumeWaitMs,
  };
}
