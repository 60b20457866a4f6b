/** Devices: the online clients with role, platform, node and how long they have been connected. */
import { age, call } from '../api.js';
import { usePoll, type ClientView } from '../poll.js';

export function Devices() {
  const { data, error } = usePoll(() => call<{ clients: ClientView[] }>('GET', '/clients'), 2000);
  const clients = data?.clients ?? [];
  return (
    <section>
      <h2>Devices</h2>
      {error && <p class="error">{error}</p>}
      <table data-testid="devices">
        <thead>
          <tr>
            <th>Client</th>
            <th>Role</th>
            <th>Platform</th>
            <th>Node</th>
            <th>Connected</th>
          </tr>
        </thead>
        <tbody>
          {clients.map((c) => (
            <tr key={c.client_id} data-testid={`device-${c.client_id}`}>
              <td>{c.client_id}</td>
              <td>{c.client_type === 'device' ? 'device' : `constellation → ${c.target_id ?? '—'}`}</td>
              <td>{c.platform}</td>
              <td>{c.node}</td>
              <td title={c.connected_at}>{age(c.connected_at)}</td>
            </tr>
          ))}
          {data && clients.length === 0 && (
            <tr>
              <td colSpan={5}>No client is connected.</td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}
