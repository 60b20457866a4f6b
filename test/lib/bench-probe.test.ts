/**
 * The bench's server probe (bench/lib/server-probe.ts) against a real aipd's /metrics over real HTTP: two reads
 * around some work give the GC pauses and the event-loop delay of that window.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseProbe, probeWindow, readProbe } from '../../bench/lib/server-probe.js';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('bench server probe', () => {
  it('reads GC pauses and loop delay from a real server, and the window between two reads', async () => {
    const s = await startTestServer();
    servers.push(s);
    const before = await readProbe(s.port, TEST_KEY);
    expect(before).not.toBeNull();
    // Work in this process (the server's): allocate until a scavenge is seen (how much that takes depends on how
    // far the young generation has grown in this worker), then block the loop for 30 ms.
    let after = before;
    for (
      let round = 0;
      round < 50 && (after!.gc.minor?.count ?? 0) <= (before!.gc.minor?.count ?? 0);
      round++
    ) {
      let keep = 0;
      for (let i = 0; i < 200_000; i++) keep += [i, { i }].length;
      expect(keep).toBe(400_000);
      await new Promise((r) => setTimeout(r, 10));
      after = await readProbe(s.port, TEST_KEY);
      expect(after).not.toBeNull();
    }
    await new Promise((r) => setTimeout(r, 30));
    const t = Date.now() + 30;
    while (Date.now() < t);
    await new Promise((r) => setTimeout(r, 30));
    after = await readProbe(s.port, TEST_KEY);
    expect(after).not.toBeNull();
    expect(after!.gc.minor!.count).toBeGreaterThan(before!.gc.minor?.count ?? 0);
    expect(after!.lag).not.toBeNull();
    expect(after!.lag!.max).toBeGreaterThanOrEqual(15);
    const w = probeWindow(before!, after!, 0.1);
    expect(w.scavenges_per_s).toBeGreaterThan(0);
    expect(w.scavenge_mean_ms).toBeGreaterThan(0);
    expect(w.gc_share).toBeGreaterThan(0);
    expect(w.loop_delay_max_ms).toBeGreaterThanOrEqual(15);
  });

  it('is null without the key, and computes a window from raw text', async () => {
    const s = await startTestServer();
    servers.push(s);
    expect(await readProbe(s.port, 'wrong-key')).toBeNull();
    // aipd's step-turnaround histogram: cumulative counts at le 0.001, 0.002, 0.005 and +Inf, then the sum
    const turns = (c: number[], sum: number): string[] => [
      '# TYPE aipd_step_turnaround_seconds histogram',
      ...['0.001', '0.002', '0.005', '+Inf'].map(
        (le, i) => `aipd_step_turnaround_seconds_bucket{le="${le}"} ${c[i]}`,
      ),
      `aipd_step_turnaround_seconds_sum ${sum}`,
      `aipd_step_turnaround_seconds_count ${c[3]}`,
    ];
    const text = (sum: number, count: number, p99: string, turned: string[]): string =>
      [
        ...turned,
        '# TYPE nodejs_gc_duration_seconds histogram',
        `nodejs_gc_duration_seconds_sum{kind="minor"} ${sum}`,
        `nodejs_gc_duration_seconds_count{kind="minor"} ${count}`,
        `nodejs_gc_duration_seconds_sum{kind="major"} 0.5`,
        `nodejs_gc_duration_seconds_count{kind="major"} 2`,
        'nodejs_eventloop_lag_p50_seconds 0.011',
        `nodejs_eventloop_lag_p99_seconds ${p99}`,
        'nodejs_eventloop_lag_max_seconds 0.03',
      ].join('\n');
    const a = parseProbe(text(1, 100, 'Nan', turns([10, 15, 20, 20], 0.02)));
    expect(a.lag).toBeNull();
    // 100 turnarounds in the window, 0.1 s in all: 50 within 1 ms, 45 more within 2 ms, the last 5 within 5 ms
    const b = parseProbe(text(1.2, 200, '0.014', turns([60, 110, 120, 120], 0.12)));
    expect(probeWindow(a, b, 2)).toEqual({
      gc_share: 0.1,
      scavenges_per_s: 50,
      scavenge_mean_ms: 2,
      major_gcs: 0,
      loop_delay_p50_ms: 1,
      loop_delay_p99_ms: 4,
      loop_delay_max_ms: 20,
      turnaround_mean_ms: 1,
      turnaround_p50_ms: 1,
      turnaround_p99_ms: 5,
    });
    // No step turned around: no figures (a server with no tasks, or metrics from before this histogram)
    const idle = probeWindow(b, parseProbe(text(1.2, 200, '0.014', turns([60, 110, 120, 120], 0.12))), 2);
    expect([idle.turnaround_mean_ms, idle.turnaround_p50_ms, idle.turnaround_p99_ms]).toEqual([
      null,
      null,
      null,
    ]);
  });
});
