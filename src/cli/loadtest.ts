/**
 * `aipd loadtest`: simulated devices run inline-plan tasks against an aipd (or any AIP server that accepts
 * inline plans) and answer every command at once. Progress on stderr, a summary table on stdout.
 *
 *   aipd loadtest --url ws://127.0.0.1:5000/ws --token KEY --devices 50 --steps 200 --duration 10 --codec msgpack
 *
 * The load generation itself lives in loadtest-core.ts, shared with bench/.
 */
import { parseArgs } from 'node:util';
import { AipLoad, type AipLoadOptions, type AipSnapshot } from './loadtest-core.js';
import type { LatencyHistogram } from './loadtest-hist.js';

export type LoadtestOptions = Omit<AipLoadOptions, 'idPrefix' | 'connectConcurrency'> & { durationS: number };

export const LOADTEST_USAGE =
  'usage: aipd loadtest --url ws://HOST:PORT/ws [--token KEY] [--devices N] [--steps S] [--duration SECONDS] [--codec json|msgpack]';

type Parsed =
  { ok: true; options: LoadtestOptions } | { ok: false; error: string } | { ok: true; help: true };

function int(name: string, raw: string | undefined, def: number, min: number, max: number): number | string {
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw)) return `--${name} must be an integer, got ${JSON.stringify(raw)}`;
  const v = Number(raw);
  return v < min || v > max ? `--${name} must be between ${min} and ${max}, got ${v}` : v;
}

/** Parses and validates the flags; never throws. */
export function parseLoadtestArgs(argv: readonly string[]): Parsed {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        devices: { type: 'string' },
        steps: { type: 'string' },
        duration: { type: 'string' },
        codec: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    // node's messages can span lines ("argument is ambiguous. Did you forget ..."): keep the first
    const text = err instanceof Error ? err.message : String(err);
    return { ok: false, error: text.split('\n')[0]! };
  }
  if (values.help) return { ok: true, help: true };
  const rawUrl = values.url as string | undefined;
  if (!rawUrl) return { ok: false, error: '--url is required (ws://HOST:PORT/ws)' };
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return { ok: false, error: `--url is not a valid URL: ${JSON.stringify(rawUrl)}` };
  }
  if (url.protocol !== 'ws:')
    return { ok: false, error: `--url must start with ws:// (TLS is not supported), got ${url.protocol}//` };
  const token = (values.token as string | undefined) ?? url.searchParams.get('token') ?? '';
  const codec = (values.codec as string | undefined) ?? 'json';
  if (codec !== 'json' && codec !== 'msgpack')
    return { ok: false, error: `--codec must be json or msgpack, got ${JSON.stringify(codec)}` };
  const devices = int('devices', values.devices as string | undefined, 10, 1, 9000);
  if (typeof devices === 'string') return { ok: false, error: devices };
  const steps = int('steps', values.steps as string | undefined, 100, 1, 100_000);
  if (typeof steps === 'string') return { ok: false, error: steps };
  const durationS = int('duration', values.duration as string | undefined, 10, 1, 86_400);
  if (typeof durationS === 'string') return { ok: false, error: durationS };
  return {
    ok: true,
    options: {
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port ? Number(url.port) : 80,
      path: url.pathname || '/ws',
      token,
      devices,
      steps,
      durationS,
      codec,
    },
  };
}

function bar(f: number, width = 24): string {
  const n = Math.round(Math.min(1, Math.max(0, f)) * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}]`;
}

let lastLine = 0;
/** A rewritten status line on a TTY; otherwise a plain line at most every 5 s. */
function status(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
  else if (text && Date.now() - lastLine >= 5000) {
    lastLine = Date.now();
    process.stderr.write(`${text}\n`);
  }
}

/** The summary table printed on stdout. */
export function summaryTable(o: LoadtestOptions, s: AipSnapshot, hist: LatencyHistogram): string {
  const ms = (q: number): string => hist.ms(q).toFixed(3);
  const rows: [string, string][] = [
    ['target', `ws://${o.host}:${o.port}${o.path} (${o.codec})`],
    ['devices connected', `${s.devices_connected} / ${o.devices}`],
    ['duration', `${s.elapsed_s.toFixed(1)} s`],
    ['command round trips', String(s.round_trips)],
    [
      'throughput',
      `${Math.round(s.round_trips / Math.max(s.elapsed_s, 1e-9)).toLocaleString('en-US')} round trips/s`,
    ],
    [
      'latency p50 / p90 / p99 / max (ms)',
      `${ms(0.5)} / ${ms(0.9)} / ${ms(0.99)} / ${(hist.maxUs / 1000).toFixed(3)}`,
    ],
    ['tasks completed', `${s.tasks_completed} (failed ${s.tasks_failed}, ${o.steps} steps each)`],
    ['errors', s.errors === 0 ? '0' : `${s.errors} (first: ${s.first_error ?? 'n/a'})`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = ['| metric | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k.padEnd(w)} | ${v} |`)];
  return lines.join('\n') + '\n';
}

/** Runs the load test; resolves to the process exit code (0 ok, 1 errors or no traffic, 2 bad flags). */
export async function runLoadtest(argv: string[]): Promise<number> {
  const parsed = parseLoadtestArgs(argv);
  if (!parsed.ok) {
    console.error(`aipd loadtest: ${parsed.error}`);
    return 2;
  }
  if ('help' in parsed) {
    console.log(LOADTEST_USAGE);
    return 0;
  }
  const o = parsed.options;
  const load = new AipLoad({ ...o, idPrefix: `loadtest-${process.pid}-` });
  let interrupted = false;
  const onSigint = (): void => {
    interrupted = true;
  };
  process.once('SIGINT', onSigint);
  try {
    await load.connectAll((done, total) => status(`connecting ${bar(done / total)} ${done}/${total}`));
    if (load.connected === 0) {
      status('');
      const s = load.snapshot();
      console.error(`aipd loadtest: no device could register${s.first_error ? `: ${s.first_error}` : ''}`);
      return 1;
    }
    load.startTasks();
    load.resetStats();
    const start = Date.now();
    let lastRt = 0;
    let lastAt = start;
    let rate = 0;
    while (!interrupted && Date.now() - start < o.durationS * 1000) {
      await new Promise((r) => setTimeout(r, 250));
      const s = load.snapshot();
      const now = Date.now();
      if (now - lastAt >= 1000) {
        rate = ((s.round_trips - lastRt) * 1000) / (now - lastAt);
        lastRt = s.round_trips;
        lastAt = now;
      }
      const f = (now - start) / (o.durationS * 1000);
      status(
        `running ${bar(f)} ${Math.round(rate).toLocaleString('en-US')}/s, ${s.round_trips} round trips, ${s.errors} errors`,
      );
      if (load.connected === 0) break;
    }
    const snap = load.snapshot();
    status('');
    process.stdout.write(summaryTable(o, snap, load.hist));
    return snap.errors > 0 || snap.round_trips === 0 ? 1 : 0;
  } finally {
    process.removeListener('SIGINT', onSigint);
    load.stop();
  }
}
