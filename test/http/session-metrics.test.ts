/** The metrics computations on their own: event counts (including channel bytes), time in status, percentiles. */
import { describe, expect, it } from 'vitest';
import {
  EventCounts,
  MetricsAggregate,
  percentile,
  sessionMetrics,
  timeInStatus,
} from '../../src/records/session-metrics.js';
import type { SessionRecord, StatusEntry } from '../../src/state/session-model.js';
import type { SessionEvent } from '../../src/state/session-store.js';

const T0 = Date.parse('2025-01-01T00:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
let nextId = 1;
const ev = (type: string, data: Record<string, unknown> = {}): SessionEvent => ({
  id: nextId++,
  session_id: 's',
  type,
  at: at(0),
  data,
});

function record(history: [StatusEntry['status'], number][]): SessionRecord {
  const last = history[history.length - 1]!;
  return {
    id: 's',
    agent_id: 'a',
    session_type: 'task',
    status: last[0],
    context: {},
    checkpoint: null,
    runtime_backend: 'local',
    runtime_metadata: {},
    created_at: at(history[0]![1]),
    updated_at: at(last[1]),
    status_history: history.map(([status, ms]) => ({ status, at: at(ms) })),
    task: null,
    managed_by: null,
    version: history.length,
  };
}

describe('session metrics', () => {
  it('counts commands by call id, results and failures, and channel bytes; a re-created id starts over', () => {
    const c = new EventCounts();
    for (const e of [
      ev('session.created'),
      ev('task.commands', { call_ids: ['a', 'b'], tools: ['x', 'y'] }),
      ev('task.results', { statuses: ['success', 'failure'] }),
      ev('task.commands', { call_ids: ['c'] }),
      ev('task.results', { statuses: ['failure'] }),
      ev('channel.closed', { kind: 'file', bytes: 1000 }),
      ev('channel.closed', { kind: 'stream', bytes: 24 }),
      ev('channel.closed', { kind: 'stream' }),
      ev('session.updated', { updates: ['status'] }),
    ])
      c.add(e);
    expect(c).toMatchObject({
      command_batches: 2,
      commands: 3,
      results: 3,
      errors: 2,
      channel_bytes: 1024,
      events: 9,
    });
    c.add(ev('session.deleted'));
    c.add(ev('session.created'));
    c.add(ev('task.commands', { call_ids: ['z'] }));
    expect(c).toMatchObject({
      command_batches: 1,
      commands: 1,
      results: 0,
      errors: 0,
      channel_bytes: 0,
      events: 2,
    });
  });

  it('time in each status: until the next entry, the last until now, a terminal one 0', () => {
    const ended = record([
      ['active', 0],
      ['paused', 100],
      ['active', 250],
      ['crashed', 300],
      ['active', 1300],
      ['completed', 1400],
    ]);
    expect(timeInStatus(ended, T0 + 99_999)).toEqual({
      active: 250,
      paused: 150,
      crashed: 1000,
      completed: 0,
    });
    const m = sessionMetrics(ended, new EventCounts(), T0 + 99_999);
    expect(m).toMatchObject({ duration_ms: 1400, ended_at: at(1400), status: 'completed' });
    const running = record([
      ['active', 0],
      ['paused', 100],
    ]);
    expect(timeInStatus(running, T0 + 600)).toEqual({ active: 100, paused: 500 });
    expect(sessionMetrics(running, new EventCounts(), T0 + 600)).toMatchObject({
      duration_ms: 600,
      ended_at: null,
    });
  });

  it('nearest-rank percentiles over many sessions', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([50, 90, 99, 100].map((p) => percentile(sorted, p))).toEqual([50, 90, 99, 100]);
    expect(percentile([], 50)).toBeNull();
    expect(percentile([7], 99)).toBe(7);
    const agg = new MetricsAggregate(T0 + 1000);
    agg.add(record([['active', 0]]));
    agg.add(
      record([
        ['active', 500],
        ['failed', 700],
      ]),
    );
    expect(agg.result(true)).toEqual({
      count: 2,
      by_status: { active: 1, failed: 1 },
      duration_ms: { p50: 200, p90: 1000, p99: 1000, max: 1000 },
      truncated: true,
    });
  });
});
