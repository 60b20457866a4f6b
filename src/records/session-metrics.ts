/**
 * Session metrics, computed from a record and its event log: how long it ran, how long it spent in each status,
 * and what its log counts (commands sent, results received, failed results, channel bytes). And the aggregate over
 * many sessions: counts by status and duration percentiles.
 */
import { isTerminalStatus, type SessionRecord, type SessionStatus } from '../state/session-model.js';
import type { SessionEvent } from '../state/session-store.js';

export interface SessionMetrics {
  readonly session_id: string;
  readonly status: SessionStatus;
  readonly created_at: string;
  /** When it reached a terminal status, or null while it has not. */
  readonly ended_at: string | null;
  /** created_at → ended_at, or → now while not ended. */
  readonly duration_ms: number;
  /** Milliseconds spent in each status it has had (from status_history); a terminal status counts 0. */
  readonly time_in_status_ms: Readonly<Partial<Record<SessionStatus, number>>>;
  /** Command batches sent (`task.commands` events). */
  readonly command_batches: number;
  /** Commands sent: the call ids of those batches. */
  readonly commands: number;
  /** Results received: the statuses of `task.results` events. */
  readonly results: number;
  /** Results whose status is `failure`. */
  readonly errors: number;
  /** Bytes moved over the session's data channels: `data.bytes` of its `channel.closed` events (0 if none logged). */
  readonly channel_bytes: number;
  /** Model calls of the session's agent and their tokens, summed from its `llm.call` events (all zero without). */
  readonly llm: LlmUsage;
  /** Events in the log these counts were taken from (the log keeps at most --event-log-max per session). */
  readonly events: number;
}

export interface LlmUsage {
  calls: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** When the record reached its terminal status, or null. */
export function endedAt(r: SessionRecord): string | null {
  if (!isTerminalStatus(r.status)) return null;
  const last = r.status_history[r.status_history.length - 1];
  return last?.status === r.status ? last.at : r.updated_at;
}

export function durationMs(r: SessionRecord, nowMs: number): number {
  const end = endedAt(r);
  return Math.max(0, (end === null ? nowMs : Date.parse(end)) - Date.parse(r.created_at));
}

/** Milliseconds per status: each history entry lasts until the next one (the last until now, or 0 if terminal). */
export function timeInStatus(r: SessionRecord, nowMs: number): Partial<Record<SessionStatus, number>> {
  const out: Partial<Record<SessionStatus, number>> = {};
  const h = r.status_history;
  for (let i = 0; i < h.length; i++) {
    const e = h[i]!;
    const next = h[i + 1];
    const until = next ? Date.parse(next.at) : isTerminalStatus(e.status) ? Date.parse(e.at) : nowMs;
    out[e.status] = (out[e.status] ?? 0) + Math.max(0, until - Date.parse(e.at));
  }
  return out;
}

/**
 * Counts taken from a session's event log, oldest first. A `session.created` starts them over: an id that was
 * deleted and created again (an AIP session id is reused once its session ended) counts only its latest life.
 */
export class EventCounts {
  command_batches = 0;
  commands = 0;
  results = 0;
  errors = 0;
  channel_bytes = 0;
  events = 0;
  llm: LlmUsage = { calls: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };

  add(e: SessionEvent): void {
    if (e.type === 'session.created') {
      this.command_batches =
        this.commands =
        this.results =
        this.errors =
        this.channel_bytes =
        this.events =
          0;
      this.llm = { calls: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
    }
    this.events++;
    const d = e.data;
    switch (e.type) {
      case 'task.commands':
        this.command_batches++;
        this.commands += Array.isArray(d.call_ids) ? d.call_ids.length : 0;
        break;
      case 'task.results':
        if (Array.isArray(d.statuses)) {
          this.results += d.statuses.length;
          this.errors += d.statuses.filter((s) => s === 'failure').length;
        }
        break;
      case 'channel.closed':
        if (typeof d.bytes === 'number' && Number.isFinite(d.bytes)) this.channel_bytes += d.bytes;
        break;
      case 'llm.call':
        this.llm.calls++;
        for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens'] as const) {
          const n = d[k];
          if (typeof n === 'number' && Number.isFinite(n)) this.llm[k] += n;
        }
        break;
    }
  }
}

export function sessionMetrics(r: SessionRecord, counts: EventCounts, nowMs: number): SessionMetrics {
  return {
    session_id: r.id,
    status: r.status,
    created_at: r.created_at,
    ended_at: endedAt(r),
    duration_ms: durationMs(r, nowMs),
    time_in_status_ms: timeInStatus(r, nowMs),
    command_batches: counts.command_batches,
    commands: counts.commands,
    results: counts.results,
    errors: counts.errors,
    channel_bytes: counts.channel_bytes,
    llm: { ...counts.llm },
    events: counts.events,
  };
}

export interface Percentiles {
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

export interface AggregateMetrics {
  readonly count: number;
  readonly by_status: Readonly<Partial<Record<SessionStatus, number>>>;
  readonly duration_ms: Percentiles;
  /** True when the scan stopped at its cap: the figures cover the newest `count` matching sessions only. */
  readonly truncated: boolean;
}

/** Nearest-rank percentile of ascending `sorted`; null when empty. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/** Counts and durations over many sessions, added one by one. */
export class MetricsAggregate {
  private readonly durations: number[] = [];
  private readonly byStatus: Partial<Record<SessionStatus, number>> = {};

  constructor(private readonly nowMs: number) {}

  get count(): number {
    return this.durations.length;
  }

  add(r: SessionRecord): void {
    this.durations.push(durationMs(r, this.nowMs));
    this.byStatus[r.status] = (this.byStatus[r.status] ?? 0) + 1;
  }

  result(truncated: boolean): AggregateMetrics {
    const sorted = [...this.durations].sort((a, b) => a - b);
    return {
      count: sorted.length,
      by_status: { ...this.byStatus },
      duration_ms: {
        p50: percentile(sorted, 50),
        p90: percentile(sorted, 90),
        p99: percentile(sorted, 99),
        max: sorted.length > 0 ? sorted[sorted.length - 1]! : null,
      },
      truncated,
    };
  }
}
