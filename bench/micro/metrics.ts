/**
 * What the Prometheus metrics add to one command round trip, in process: the lifecycle events the server emits
 * for a round trip (`command.sent`, `results.received`, and two `store.write`s: the batch logged, the results
 * committed), built and delivered with no subscriber (`--metrics off`: `wants()` is false, nothing is built) and
 * with the metrics subscribed. Interleaved, medians. Run: `npm run build && node dist/bench/micro/metrics.js`.
 */
import { Metrics } from '../../src/ops/metrics.js';
import { EventBus } from '../../src/state/events.js';
import type { SessionStore } from '../../src/state/session-store.js';
import { measureInterleaved, printTable } from './harness.js';

const SESSIONS = Array.from({ length: 64 }, (_, i) => `session-${i}`);
const store = { count: () => Promise.resolve([]) } as unknown as SessionStore;

function roundTrip(bus: EventBus, n: number): void {
  const sessionId = SESSIONS[n & 63]!;
  const responseId = `response-${n}`;
  if (bus.wants('command.sent'))
    bus.emit('command.sent', { sessionId, executorId: 'dev', responseId, callIds: ['c1'], tools: ['noop'] });
  for (const op of ['append_events', 'update'])
    if (bus.wants('store.write')) bus.emit('store.write', { op, ms: 0.4, ok: true });
  if (bus.wants('results.received'))
    bus.emit('results.received', { sessionId, executorId: 'dev', responseId, statuses: ['success'] });
}

const off = new EventBus();
const on = new EventBus();
const metrics = new Metrics(on, { store });
let i = 0;
let j = 0;
const rows = measureInterleaved(
  [
    ['round trip events, metrics off', () => roundTrip(off, i++)],
    ['round trip events, metrics on', () => roundTrip(on, j++)],
  ],
  { repMs: 100, reps: 9 },
);
printTable('Metrics cost per command round trip', rows);
console.log(`\nadded by the metrics: ${rows[1]!.ns_per_op - rows[0]!.ns_per_op} ns per round trip`);
metrics.close();
