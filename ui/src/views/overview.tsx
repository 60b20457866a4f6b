/**
 * Overview: a few live numbers from /metrics (read every 2 s), and sparklines of tasks ended per second and of the
 * command round-trip p99 over each interval (from the histogram's bucket increases).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { text } from '../api.js';
import {
  bucketsOf,
  parseExposition,
  quantileBetween,
  sumOf,
  type Exposition,
} from '../../../src/lib/prom-text.js';

const EVERY_MS = 2000;
const POINTS = 60;
const RTT = 'aipd_command_rtt_seconds';

function Sparkline({
  values,
  label,
  unit,
  testid,
}: {
  values: (number | null)[];
  label: string;
  unit: string;
  testid: string;
}) {
  const nums = values.map((v) => v ?? 0);
  const max = Math.max(1e-9, ...nums);
  const w = 240;
  const h = 48;
  const pts = nums
    .map((v, i) => `${(i / Math.max(1, POINTS - 1)) * w},${h - (v / max) * (h - 4) - 2}`)
    .join(' ');
  const last = values[values.length - 1];
  return (
    <figure class="spark" data-testid={testid}>
      <figcaption>
        {label}: <b>{last == null ? '—' : `${+last.toPrecision(3)} ${unit}`}</b>
      </figcaption>
      <svg width={w} height={h} viewBox={`0 0 ${w} ${h}`}>
        <polyline points={pts} fill="none" stroke="currentColor" stroke-width="1.5" />
      </svg>
    </figure>
  );
}

export function Overview() {
  const [numbers, setNumbers] = useState<Record<string, number> | null>(null);
  const [rate, setRate] = useState<(number | null)[]>([]);
  const [p99, setP99] = useState<(number | null)[]>([]);
  const [error, setError] = useState<string | null>(null);
  const prev = useRef<{ e: Exposition; at: number } | null>(null);
  useEffect(() => {
    let live = true;
    const tick = async (): Promise<void> => {
      try {
        const e = parseExposition(await text('/metrics'));
        const at = performance.now();
        if (!live) return;
        const ended = sumOf(e, 'aipd_tasks_ended_total');
        setNumbers({
          devices: sumOf(e, 'aipd_connections', { role: 'device' }),
          constellations: sumOf(e, 'aipd_connections', { role: 'constellation' }),
          live: sumOf(e, 'aipd_sessions_live'),
          started: sumOf(e, 'aipd_tasks_started_total'),
          completed: sumOf(e, 'aipd_tasks_ended_total', { status: 'completed' }),
          failed: sumOf(e, 'aipd_tasks_ended_total', { status: 'failed' }),
          ended,
        });
        const p = prev.current;
        if (p) {
          const perSec = (ended - sumOf(p.e, 'aipd_tasks_ended_total')) / ((at - p.at) / 1000);
          setRate((r) => [...r, perSec].slice(-POINTS));
          const q = quantileBetween(bucketsOf(p.e, RTT), bucketsOf(e, RTT), 0.99);
          setP99((r) => [...r, q === null ? null : q * 1000].slice(-POINTS));
        }
        prev.current = { e, at };
        setError(null);
      } catch (err) {
        if (live) setError(err instanceof Error ? err.message : String(err));
      }
    };
    void tick();
    const t = setInterval(() => void tick(), EVERY_MS);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, []);
  return (
    <section>
      <h2>Overview</h2>
      {error && <p class="error">/metrics: {error}</p>}
      {numbers && (
        <dl class="numbers" data-testid="numbers">
          {(
            [
              ['devices', 'Devices online'],
              ['constellations', 'Constellations'],
              ['live', 'Live sessions'],
              ['started', 'Tasks started'],
              ['completed', 'Tasks completed'],
              ['failed', 'Tasks failed'],
            ] as const
          ).map(([k, label]) => (
            <div key={k}>
              <dt>{label}</dt>
              <dd data-testid={`n-${k}`}>{numbers[k]}</dd>
            </div>
          ))}
        </dl>
      )}
      <Sparkline values={rate} label="Tasks per second" unit="/s" testid="spark-rate" />
      <Sparkline values={p99} label="Command round trip p99" unit="ms" testid="spark-p99" />
    </section>
  );
}
