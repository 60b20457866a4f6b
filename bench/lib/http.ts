/**
 * HTTP scenarios: autocannon's programmatic API in the orchestrator process (the server is a separate
 * process), with the server's CPU sampled over the autocannon run.
 */
import autocannon, { type AutocannonResult } from 'autocannon';
import type { BenchSettings, ScenarioResult } from './scenarios.js';
import { bar, progress } from './progress.js';
import { cpuSeconds, rssBytes, type StartedServer } from './proc.js';

export async function runAutocannon(
  name: string,
  server: StartedServer,
  url: string,
  headers: Record<string, string>,
  s: BenchSettings,
): Promise<ScenarioResult> {
  const connections = Math.min(s.conns, 64);
  const cpu0 = cpuSeconds(server.pid);
  const t0 = performance.now();
  let ticks = 0;
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    const inst = autocannon({ url, connections, duration: s.httpDurationS, headers }, (err, res) => {
      if (err) reject(err);
      else resolve(res);
    });
    inst.on('tick', () => {
      ticks++;
      progress(
        name,
        'measuring',
        `${bar(ticks, s.httpDurationS)} ${Math.max(0, s.httpDurationS - ticks)} s left`,
      );
    });
  });
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(server.pid) - cpu0;
  const total = result.requests.total;
  return {
    throughput_per_s: Math.round(total / wall),
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    server_cpu_s: Math.round(cpu * 100) / 100,
    server_rss_mb: Math.round((rssBytes(server.pid) / 1024 / 1024) * 10) / 10,
    connections,
    payload_bytes: 0,
    duration_s: Math.round(wall * 100) / 100,
    per_server_cpu_s: cpu > 0 ? Math.round(total / cpu) : null,
    url: url.replace(/^http:\/\/[^/]+/, ''),
    status_2xx: result['2xx'],
    non_2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}
