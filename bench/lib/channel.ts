/**
 * The `channel` scenario: data-channel throughput through aipd (64 KiB chunks, controller → device, both in one
 * load-generator process), next to the bare uWS echo server carrying binary 64 KiB messages (`uws-echo-64k`),
 * both measured in the same run with the same warm-up and duration. Ratios `channel/uws-echo:wall|cpu` compare
 * the two (chunks per wall second; chunks per server-CPU second).
 */
import { fileURLToPath } from 'node:url';
import type { LoadgenConfig } from '../loadgen.js';
import { CHANNEL_CHUNK, CHANNEL_WINDOW, ECHO_WINDOW } from './channel-load.js';
import { drive, type Measured } from './driver.js';
import { startServer, stopChild } from './proc.js';
import { aipdServeArgs, row, stopGraceMs, type BenchSettings, type ScenarioResult } from './scenarios.js';

const MB = 1024 * 1024;
const API_KEY = 'bench-key';
const UWS_ECHO = fileURLToPath(new URL('../servers/uws-echo.js', import.meta.url));
const round = (v: number, d = 3): number => Math.round(v * 10 ** d) / 10 ** d;

/** The shared row, plus MB/s and the stream count for 64 KiB chunks. */
function chunkRow(m: Measured, streams: number, extra: Record<string, unknown>): ScenarioResult {
  const mbPerS = round(((m.snap.round_trips / m.snap.elapsed_s) * CHANNEL_CHUNK) / MB, 1);
  return row(m, streams, CHANNEL_CHUNK, { mb_per_s: mbPerS, streams, ...extra });
}

/** Rows `channel` and `uws-echo-64k`. */
export async function channelScenarios(
  s: BenchSettings & { channelStreams: number },
): Promise<Record<string, ScenarioResult>> {
  const deadlineS = Math.ceil(s.warmupS + s.durationS + 120);
  const out: Record<string, ScenarioResult> = {};
  const aipd = await startServer(
    aipdServeArgs(API_KEY, ['--log-level', 'silent', ...s.aipdArgs], s.aipdNodeArgs),
    /listening on ws:\/\/.*:(\d+)\/ws/,
  );
  try {
    const cfg: LoadgenConfig = {
      mode: 'channel',
      port: aipd.port,
      token: API_KEY,
      streams: s.channelStreams,
      idPrefix: 'bench-ch-',
      deadlineS,
    };
    const m = await drive({
      scenario: 'channel',
      server: aipd,
      configs: [cfg],
      kind: 'load',
      warmupS: s.warmupS,
      durationS: s.durationS,
    });
    out.channel = chunkRow(m, s.channelStreams, {
      throughput_means:
        '64 KiB chunks delivered controller → device through aipd per second; latency = write → read',
      window_bytes: CHANNEL_WINDOW,
    });
  } finally {
    await stopChild(aipd.child, stopGraceMs(s));
  }
  const echo = await startServer([UWS_ECHO], /^listening (\d+)$/);
  try {
    const cfg: LoadgenConfig = { mode: 'echo-bin', port: echo.port, conns: s.channelStreams, deadlineS };
    const m = await drive({
      scenario: 'uws-echo-64k',
      server: echo,
      configs: [cfg],
      kind: 'load',
      warmupS: s.warmupS,
      durationS: s.durationS,
    });
    out['uws-echo-64k'] = chunkRow(m, s.channelStreams, {
      throughput_means: 'binary 64 KiB messages echoed per second',
      window: ECHO_WINDOW,
    });
  } finally {
    await stopChild(echo.child, stopGraceMs(s));
  }
  return out;
}

/** `channel/uws-echo:wall` and `:cpu`, against the echo of the same chunk size measured in the same run. */
export function channelRatios(sc: Record<string, ScenarioResult>): Record<string, number> {
  const a = sc.channel;
  const b = sc['uws-echo-64k'];
  if (!a || !b) return {};
  const r: Record<string, number> = {};
  if (b.throughput_per_s > 0) r['channel/uws-echo:wall'] = round(a.throughput_per_s / b.throughput_per_s);
  const ca = a.per_server_cpu_s;
  const cb = b.per_server_cpu_s;
  if (typeof ca === 'number' && typeof cb === 'number' && cb > 0) r['channel/uws-echo:cpu'] = round(ca / cb);
  return r;
}
