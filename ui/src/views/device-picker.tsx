/** A picker of the connected devices (the terminal and files views open sessions on one). */
import { call } from '../api.js';
import { usePoll, type ClientView } from '../poll.js';

export function DevicePicker({ value, onChange }: { value: string; onChange: (id: string) => void }) {
  const { data } = usePoll(() => call<{ clients: ClientView[] }>('GET', '/clients'), 3000);
  const devices = (data?.clients ?? []).filter((c) => c.client_type === 'device');
  return (
    <select data-testid="device-picker" value={value} onChange={(e) => onChange(e.currentTarget.value)}>
      <option value="">choose a device</option>
      {devices.map((d) => (
        <option key={d.client_id} value={d.client_id}>
          {d.client_id} ({d.platform})
        </option>
      ))}
    </select>
  );
}
