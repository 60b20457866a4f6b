/**
 * Prometheus metrics (`GET /metrics`), fed by the lifecycle event stream and nothing else: this module subscribes
 * to the EventBus and keeps its own prom-client registry (one per server, so several servers share a process in
 * tests). The hot path only emits the events it already emitted; what needs state (a command's round trip, the
 * bytes queued on backed-up connections) is tracked here, bounded by what is live. The gauges of live sessions are
 * read from the store at scrape time.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EventBus } from '../state/events.js';
import { SlotMap } from '../lib/slot-map.js';
import { HotHistogram, type Observer } from './hot-histogram.js';
import { SESSION_STATUSES, isTerminalStatus } from '../state/session-model.js';
import type { SessionStore } from '../state/session-store.js';

const LIVE_STATUSES = SESSION_STATUSES.filter((s) => !isTerminalStatus(s));

/** Round-trip buckets, seconds: from sub-millisecond (loopback) to the ten-minute command timeout. */
const RTT_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 600,
];
/**
 * Turnaround buckets, seconds: a plan step's is tens of microseconds to a few milliseconds; an `llm` agent's
 * includes its model call.
 */
const TURNAROUND_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 120,
];
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];
const STORE_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

let processMetrics: Registry | null = null;

/**
 * Process-wide metrics (event-loop lag, GC, memory, CPU, handles): one registry per process, since their collectors
 * (a GC observer, an event-loop delay monitor) are the process's and are never stopped.
 */
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

interface SessionTimes {
  readonly sent: SlotMap<string, number>;
  /** When results last arrived, until the session's next command goes out; -1 when none waits. */
  resultsAt: number;
}

export interface MetricsOptions {
  /** The `node` label on every series (set in a cluster). */
  readonly node?: string;
  /** Sessions to read for the live-session gauges. */
  readonly store: SessionStore;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly unsubscribe: (() => void)[] = [];
  /**
   * Per session (dropped when it ends, so bounded by what is live): command sent → its time, usually one command (a
   * SlotMap, which does not reallocate as it empties and fills each round trip), and when its last results arrived.
   */
  private readonly inFlight = new Map<string, SessionTimes>();
  /** Labels of each registered client, to take it off the gauge when it goes. */
  private readonly clients = new Map<string, { role: string; codec: string; connId: string }>();
  /** Bytes queued on each connection over its high-water mark (between backpressure on and off). */
  private readonly queued = new Map<string, number>();
  private queuedTotal = 0;
  private busLag: (() => number | null) | null = null;

  constructor(events: EventBus, opts: MetricsOptions) {
    if (opts.node !== undefined) {
      this.registry.setDefaultLabels({ node: opts.node });
      processRegistry().setDefaultLabels({ node: opts.node });
    }
    const r = [this.registry];
    const connections = new Gauge({
      name: 'aipd_connections',
      help: 'Registered clients connected to this node, by role (device, constellation) and codec',
      labelNames: ['role', 'codec'] as const,
      registers: r,
    });
    const registrations = new Counter({
      name: 'aipd_registrations_total',
      help: 'Registrations accepted, by role and codec',
      labelNames: ['role', 'codec'] as const,
      registers: r,
    });
    const refusals = new Counter({
      name: 'aipd_registrations_refused_total',
      help: 'Registrations refused, by reason (the error code)',
      labelNames: ['reason'] as const,
      registers: r,
    });
    const disconnects = new Counter({
      name: 'aipd_disconnects_total',
      help: 'Registered clients gone, by role and reason (disconnected, slow_consumer)',
      labelNames: ['role', 'reason'] as const,
      registers: r,
    });
    const slowClosed = new Counter({
      name: 'aipd_slow_consumer_closes_total',
      help: 'Connections closed because they did not read what was sent to them (close 4008)',
      registers: r,
    });
    const started = new Counter({
      name: 'aipd_tasks_started_total',
      help: 'AIP tasks started on this node',
      registers: r,
    });
    const ended = new Counter({
      name: 'aipd_tasks_ended_total',
      help: 'AIP tasks ended on this node, by status',
      labelNames: ['status'] as const,
      registers: r,
    });
    const commands = new Counter({
      name: 'aipd_commands_sent_total',
      help: 'Command batches sent to devices',
      registers: r,
    });
    const rtt = new HotHistogram(
      'aipd_command_rtt_seconds',
      'Command round trip: a batch sent to its device until its command_results arrived',
      RTT_BUCKETS,
      null,
      this.registry,
    ).child();
    const turnaround = new HotHistogram(
      'aipd_step_turnaround_seconds',
      "A session's step inside aipd: its command_results arrived until its next command went out (decode, the " +
        "step's record committed, the agent's next step, encode and send); a task's last step has none",
      TURNAROUND_BUCKETS,
      null,
      this.registry,
    ).child();
    const queuedBytes: Gauge = new Gauge({
      name: 'aipd_outbound_queued_bytes',
      help: 'Bytes queued for connections that are over their high-water mark (backed up)',
      registers: r,
      collect: () => queuedBytes.set(this.queuedTotal),
    });
    const backedUp: Gauge = new Gauge({
      name: 'aipd_backpressured_connections',
      help: 'Connections over their high-water mark now',
      registers: r,
      collect: () => backedUp.set(this.queued.size),
    });
    const channelsOpen = new Gauge({
      name: 'aipd_channels_open',
      help: 'Data channels open, by kind',
      labelNames: ['kind'] as const,
      registers: r,
    });
    const channelsOpened = new Counter({
      name: 'aipd_channels_opened_total',
      help: 'Data channels opened, by kind',
      labelNames: ['kind'] as const,
      registers: r,
    });
    const channelBytes = new Counter({
      name: 'aipd_channel_bytes_total',
      help: 'Bytes moved over data channels that have closed, by kind',
      labelNames: ['kind'] as const,
      registers: r,
    });
    const httpRequests = new Counter({
      name: 'aipd_http_requests_total',
      help: 'HTTP requests answered, by method, route pattern (none: no route matched) and status',
      labelNames: ['method', 'route', 'status'] as const,
      registers: r,
    });
    const httpLatency = new Histogram({
      name: 'aipd_http_request_duration_seconds',
      help: 'HTTP request to its answer head (a streamed body is not included), by method and route pattern',
      labelNames: ['method', 'route'] as const,
      buckets: HTTP_BUCKETS,
      registers: r,
    });
    const storeLatency = new HotHistogram(
      'aipd_store_write_duration_seconds',
      'Session store writes, by operation, call to commit (a group commit is shared by its writes)',
      STORE_BUCKETS,
      'op',
      this.registry,
    );
    const storeOps = new Map<string, Observer>();
    const storeErrors = new Counter({
      name: 'aipd_store_write_errors_total',
      help: 'Session store writes that failed, by operation',
      labelNames: ['op'] as const,
      registers: r,
    });
    new Gauge({
      name: 'aipd_sessions_live',
      help: 'Sessions not yet ended (in the store, so cluster-wide with a shared store), by type and status',
      labelNames: ['type', 'status'] as const,
      registers: r,
      async collect() {
        const counts = await opts.store.count(LIVE_STATUSES);
        this.reset();
        for (const c of counts) this.set({ type: c.session_type, status: c.status }, c.count);
      },
    });
    const busLag: Gauge = new Gauge({
      name: 'aipd_cluster_bus_lag_seconds',
      help: 'Cluster only: time a probe message took through Redis pub/sub (publish to receipt), last measured',
      registers: r,
      collect: () => {
        const lag = this.busLag?.() ?? null;
        if (lag !== null) busLag.set(lag);
      },
    });

    this.unsubscribe.push(
      events.on('client.registered', (e) => {
        // One literal of a fixed shape (a spread gave each entry a hidden class of its own).
        const entry = { role: e.clientType, codec: e.codec, connId: e.connId };
        this.clients.set(e.clientId, entry);
        connections.inc({ role: entry.role, codec: entry.codec });
        registrations.inc({ role: entry.role, codec: entry.codec });
      }),
      events.on('client.refused', (e) => refusals.inc({ reason: e.reason })),
      events.on('client.gone', (e) => {
        const c = this.clients.get(e.clientId);
        if (c) {
          this.clients.delete(e.clientId);
          connections.dec({ role: c.role, codec: c.codec });
          this.unqueue(c.connId);
        }
        disconnects.inc({ role: e.clientType, reason: e.reason });
        if (e.reason === 'slow_consumer') slowClosed.inc();
      }),
      events.on('session.created', () => started.inc()),
      events.on('session.ended', (e) => {
        ended.inc({ status: e.status });
        this.inFlight.delete(e.sessionId);
      }),
      events.on('command.sent', (e) => {
        commands.inc();
        const now = performance.now();
        let t = this.inFlight.get(e.sessionId);
        if (!t) this.inFlight.set(e.sessionId, (t = { sent: new SlotMap<string, number>(), resultsAt: -1 }));
        t.sent.set(e.responseId, now);
        if (t.resultsAt >= 0) {
          turnaround.observe((now - t.resultsAt) / 1000);
          t.resultsAt = -1;
        }
      }),
      events.on('results.received', (e) => {
        const t = this.inFlight.get(e.sessionId);
        const at = t?.sent.get(e.responseId);
        if (at === undefined) return;
        t!.sent.delete(e.responseId);
        const now = performance.now();
        rtt.observe((now - at) / 1000);
        t!.resultsAt = now;
      }),
      events.on('channel.opened', (e) => {
        channelsOpen.inc({ kind: e.kind });
        channelsOpened.inc({ kind: e.kind });
      }),
      events.on('channel.closed', (e) => {
        channelsOpen.dec({ kind: e.kind });
        channelBytes.inc({ kind: e.kind }, e.bytes);
      }),
      events.on('backpressure.on', (e) => {
        this.unqueue(e.connId);
        this.queued.set(e.connId, e.bufferedBytes);
        this.queuedTotal += e.bufferedBytes;
      }),
      events.on('backpressure.off', (e) => this.unqueue(e.connId)),
      events.on('http.request', (e) => {
        const route = e.route ?? 'none';
        httpRequests.inc({ method: e.method, route, status: String(e.status) });
        httpLatency.observe({ method: e.method, route }, e.ms / 1000);
      }),
      events.on('store.write', (e) => {
        let o = storeOps.get(e.op);
        if (!o) storeOps.set(e.op, (o = storeLatency.child(e.op)));
        o.observe(e.ms / 1000);
        if (!e.ok) storeErrors.inc({ op: e.op });
      }),
    );
  }

  /** Where the cluster bus lag comes from (src/ops/redis-probe.ts). */
  setBusLag(read: () => number | null): void {
    this.busLag = read;
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ text: string; contentType: string }> {
    const own = await this.registry.metrics();
    return { text: (await processRegistry().metrics()) + own, contentType: this.registry.contentType };
  }

  close(): void {
    for (const u of this.unsubscribe.splice(0)) u();
    this.registry.clear();
  }

  private unqueue(connId: string): void {
    const had = this.queued.get(connId);
    if (had === undefined) return;
    this.queued.delete(connId);
    this.queuedTotal -= had;
  }
}
