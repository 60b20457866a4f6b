/**
 * Sessions: a filterable list, reloaded every second, and a detail view with the status timeline, the live event log (SSE), the checkpoint and the result,
 * and cancel and delete.
 */
import { useEffect, useState } from 'preact/hooks';
import { age, call, follow, type SseEvent } from '../api.js';

const STATUSES = ['active', 'paused', 'completed', 'crashed', 'failed', 'cancelled'] as const;

interface SessionRecord {
  id: string;
  agent_id: string;
  session_type: string;
  status: string;
  created_at: string;
  updated_at: string;
  checkpoint: unknown;
  context: unknown;
  status_history: { status: string; at: string; reason?: string }[];
  task?: {
    task_name: string;
    requester: string;
    executor: string;
    result: unknown;
    error: string | null;
  } | null;
}

/** How often the list reloads (the detail view follows its session's events live instead). */
const LIST_EVERY_MS = 1000;

/** A counter bumped every `ms`, for views that reload on it. */
function useTick(ms: number): number {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((x) => x + 1), ms);
    return () => clearInterval(t);
  }, [ms]);
  return tick;
}

export function Sessions() {
  const [status, setStatus] = useState('');
  const [type, setType] = useState('');
  const [device, setDevice] = useState('');
  const [list, setList] = useState<SessionRecord[]>([]);
  const [error, setError] = useState<string | null>(null);
  const tick = useTick(LIST_EVERY_MS);
  useEffect(() => {
    const q = new URLSearchParams({ limit: '200' });
    if (status) q.append('status', status);
    if (type) q.set('session_type', type);
    if (device) q.set('agent_id', device);
    call<SessionRecord[]>('GET', `/sessions?${q.toString()}`).then(
      (l) => {
        setList(l);
        setError(null);
      },
      (err: unknown) => setError(String(err)),
    );
  }, [tick, status, type, device]);
  return (
    <section>
      <h2>Sessions</h2>
      <div class="filters">
        <select data-testid="filter-status" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
          <option value="">any status</option>
          {STATUSES.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
        <input placeholder="type" value={type} onInput={(e) => setType(e.currentTarget.value)} />
        <input placeholder="device" value={device} onInput={(e) => setDevice(e.currentTarget.value)} />
      </div>
      {error && <p class="error">{error}</p>}
      <table data-testid="sessions">
        <thead>
          <tr>
            <th>Session</th>
            <th>Status</th>
            <th>Type</th>
            <th>Device</th>
            <th>Age</th>
          </tr>
        </thead>
        <tbody>
          {list.map((s) => (
            <tr key={s.id} data-testid={`session-${s.id}`}>
              <td>
                <a href={`#/sessions/${encodeURIComponent(s.id)}`}>{s.id}</a>
              </td>
              <td class={`st-${s.status}`} data-testid="status">
                {s.status}
              </td>
              <td>{s.session_type}</td>
              <td>{s.agent_id}</td>
              <td title={s.created_at}>{age(s.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function SessionDetail({ id }: { id: string }) {
  const [rec, setRec] = useState<SessionRecord | null>(null);
  const [events, setEvents] = useState<SseEvent[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [reload, setReload] = useState(0);
  const path = `/sessions/${encodeURIComponent(id)}`;
  useEffect(() => {
    const ac = new AbortController();
    setEvents([]);
    void follow(
      `${path}/events`,
      (e) => {
        setEvents((l) => [...l, e].slice(-500));
        setReload((r) => r + 1);
      },
      ac.signal,
    );
    return () => ac.abort();
  }, [path]);
  useEffect(() => {
    call<SessionRecord>('GET', path).then(setRec, (err: unknown) => setError(String(err)));
  }, [path, reload]);
  const act = async (what: 'cancel' | 'delete'): Promise<void> => {
    try {
      if (what === 'delete') {
        await call('DELETE', path);
        location.hash = '#/sessions';
        return;
      }
      if (rec?.session_type === 'task') await call('DELETE', `/api/sessions/${encodeURIComponent(id)}`);
      else await call('PATCH', path, { status: 'cancelled', reason: 'cancelled from the dashboard' });
      setReload((r) => r + 1);
    } catch (err) {
      setError(String(err));
    }
  };
  if (!rec) return <section>{error ? <p class="error">{error}</p> : 'Loading…'}</section>;
  const running = rec.status === 'active' || rec.status === 'paused';
  return (
    <section data-testid="session-detail">
      <h2>
        <a href="#/sessions">Sessions</a> / {rec.id}
      </h2>
      {error && <p class="error">{error}</p>}
      <p>
        <span class={`badge st-${rec.status}`} data-testid="detail-status">
          {rec.status}
        </span>{' '}
        {rec.session_type} on <b>{rec.agent_id}</b>, created {age(rec.created_at)} ago
      </p>
      <div class="actions">
        <button data-testid="cancel" disabled={!running} onClick={() => void act('cancel')}>
          Cancel
        </button>
        <button
          data-testid="delete"
          class="danger"
          onClick={() => {
            if (confirm(`Delete session ${rec.id}?`)) void act('delete');
          }}
        >
          Delete
        </button>
      </div>
      <h3>Timeline</h3>
      <ol class="timeline" data-testid="timeline">
        {rec.status_history.map((h, i) => (
          <li key={i} class={`st-${h.status}`}>
            <b>{h.status}</b> <time>{h.at}</time>
            {h.reason && <span> — {h.reason}</span>}
          </li>
        ))}
      </ol>
      <div class="two">
        <div>
          <h3>Checkpoint</h3>
          <pre data-testid="checkpoint">{JSON.stringify(rec.checkpoint, null, 2)}</pre>
        </div>
        <div>
          <h3>Result</h3>
          <pre data-testid="result">
            {rec.task ? JSON.stringify({ result: rec.task.result, error: rec.task.error }, null, 2) : '—'}
          </pre>
        </div>
      </div>
      <h3>Events (live)</h3>
      <ol class="events" data-testid="events">
        {events.map((e, i) => (
          <li key={e.id ?? i}>
            <code>{e.event}</code> <span>{e.data.length > 300 ? `${e.data.slice(0, 300)}…` : e.data}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}
