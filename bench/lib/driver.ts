/**
 * Drives one or more load-generator children against a running server and measures the server over the
 * same window: CPU from /proc/<pid>/stat (utime+stime delta), RSS from /proc/<pid>/status.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LatencyHistogram } from '../../src/cli/loadtest-hist.js';
import type { AipSnapshot } from '../../src/cli/loadtest-core.js';
import type { ChildMsg, LoadgenConfig, ParentMsg } from '../loadgen.js';
import { bar, progress } from './progress.js';
import { cpuSeconds, cpuTimes, rssBytes, sleep, track, type StartedServer } from './proc.js';
import { probeWindow, type ProbeReading, type ProbeWindow } from './server-probe.js';

const LOADGEN = fileURLToPath(new URL('../loadgen.js', import.meta.url));

export interface Measured {
  snap: AipSnapshot;
  hist: LatencyHistogram;
  cpu_s: number;
  /** The part of `cpu_s` the kernel spent for the server (stime: socket reads and writes, loopback TCP, epoll). */
  sys_s: number;
  wall_s: number;
  rss_before: number;
  rss_after: number;
  connect_s: number;
  /** Server CPU seconds spent while the devices connected and registered. */
  connect_cpu_s: number;
  connected: number;
  /** The server's own GC and event-loop figures over the window (when `DriveOptions.probe` is given). */
  probe: ProbeWindow | null;
}

class Child {
  readonly proc: ChildProcess;
  done = 0;
  total = 0;
  ready: Promise<number>;
  private snapWaiter: ((s: AipSnapshot) => void) | null = null;
  fatal: string | null = null;

  constructor(cfg: LoadgenConfig) {
    this.proc = track(
      fork(LOADGEN, [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
    this.ready = new Promise((resolve, reject) => {
      this.proc.on('message', (m: ChildMsg) => {
        if (m.t === 'progress') {
          this.done = m.done;
          this.total = m.total;
        } else if (m.t === 'ready') resolve(m.connected);
        else if (m.t === 'snapshot') this.snapWaiter?.(m.data);
        else if (m.t === 'fatal') {
          this.fatal = m.message;
          reject(new Error(m.message));
        }
      });
      this.proc.once('exit', (code) =>
        reject(new Error(this.fatal ?? `loadgen exited early (code ${code})`)),
      );
    });
  }

  tell(m: ParentMsg): void {
    if (this.proc.connected) this.proc.send(m);
  }

  snapshot(): Promise<AipSnapshot> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('loadgen did not answer snapshot')), 10_000);
      this.snapWaiter = (s) => {
        clearTimeout(t);
        this.snapWaiter = null;
        resolve(s);
      };
      this.tell({ t: 'snapshot' });
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.tell({ t: 'stop' });
    const k = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(k);
  }
}

function merge(snaps: AipSnapshot[]): { snap: AipSnapshot; hist: LatencyHistogram } {
  const hist = new LatencyHistogram();
  const snap = { ...snaps[0]! };
  hist.merge(LatencyHistogram.fromJSON(snaps[0]!.hist));
  for (const s of snaps.slice(1)) {
    hist.merge(LatencyHistogram.fromJSON(s.hist));
    snap.elapsed_s = Math.max(snap.elapsed_s, s.elapsed_s);
    snap.round_trips += s.round_trips;
    snap.tasks_started += s.tasks_started;
    snap.tasks_completed += s.tasks_completed;
    snap.tasks_failed += s.tasks_failed;
    snap.errors += s.errors;
    snap.first_error ??= s.first_error;
    snap.heartbeats_answered += s.heartbeats_answered;
    snap.devices_connected += s.devices_connected;
    snap.bytes_out += s.bytes_out;
    snap.bytes_in += s.bytes_in;
  }
  return { snap, hist };
}

export interface DriveOptions {
  scenario: string;
  server: StartedServer;
  configs: LoadgenConfig[];
  /** 'load': start, warm up, measure. 'idle': heartbeat once, hold, measure memory. */
  kind: 'load' | 'idle';
  warmupS: number;
  durationS: number;
  /** Reads the server's probe (server-probe.ts) as the window opens and closes. */
  probe?: () => Promise<ProbeReading | null>;
}

export async function drive(o: DriveOptions): Promise<Measured> {
  const pid = o.server.pid;
  const rssBefore = rssBytes(pid);
  const cpuStart = cpuSeconds(pid);
  const children = o.configs.map((c) => new Child(c));
  try {
    const t0 = Date.now();
    const tick = setInterval(() => {
      const done = children.reduce((a, c) => a + c.done, 0);
      const total = children.reduce((a, c) => a + c.total, 0);
      progress(o.scenario, 'connecting', `${bar(done, total)} ${done}/${total}`);
    }, 200);
    let connected: number;
    try {
      connected = (await Promise.all(children.map((c) => c.ready))).reduce((a, b) => a + b, 0);
    } finally {
      clearInterval(tick);
    }
    const connectS = (Date.now() - t0) / 1000;
    const connectCpu = cpuSeconds(pid) - cpuStart;
    if (connected === 0) throw new Error('no connection could be established');
    if (o.kind === 'load') {
      for (const c of children) c.tell({ t: 'start' });
      await countdown(o.scenario, 'warm-up', o.warmupS);
    }
    // Read before the load generators reset and after they snapshot, so the reads fall outside their histograms.
    const probe0 = (await o.probe?.()) ?? null;
    const p0 = performance.now();
    for (const c of children) c.tell({ t: 'reset' });
    if (o.kind === 'idle') {
      // one heartbeat per device; wait (bounded) until all are answered, then hold idle and measure
      for (const c of children) c.tell({ t: 'heartbeat' });
      const until = Date.now() + 30_000;
      for (;;) {
        const answered = (await Promise.all(children.map((c) => c.snapshot()))).reduce(
          (a, s) => a + s.heartbeats_answered,
          0,
        );
        progress(o.scenario, 'heartbeats', `${bar(answered, connected)} ${answered}/${connected}`);
        if (answered >= connected || Date.now() > until) break;
        await sleep(250);
      }
    }
    const cpu0 = cpuTimes(pid);
    const w0 = performance.now();
    await countdown(o.scenario, o.kind === 'load' ? 'measuring' : 'holding idle', o.durationS);
    const cpu1 = cpuTimes(pid);
    const wall = (performance.now() - w0) / 1000;
    const rssAfter = rssBytes(pid);
    const { snap, hist } = merge(await Promise.all(children.map((c) => c.snapshot())));
    const probe1 = probe0 ? await o.probe!() : null;
    const probeS = (performance.now() - p0) / 1000;
    return {
      snap,
      hist,
      cpu_s: cpu1.user + cpu1.sys - (cpu0.user + cpu0.sys),
      sys_s: cpu1.sys - cpu0.sys,
      wall_s: wall,
      rss_before: rssBefore,
      rss_after: rssAfter,
      connect_s: connectS,
      connect_cpu_s: connectCpu,
      connected,
      probe: probe0 && probe1 ? probeWindow(probe0, probe1, probeS) : null,
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
  }
}

async function countdown(scenario: string, phase: string, seconds: number): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const left = end - Date.now();
    progress(
      scenario,
      phase,
      `${bar(seconds * 1000 - left, seconds * 1000)} ${(left / 1000).toFixed(0)} s left`,
    );
    await sleep(Math.min(250, left));
  }
}
