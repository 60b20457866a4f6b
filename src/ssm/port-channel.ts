/** Opening one TCP connection to a Port session's device port, with the refusal worded for the plugin's user. */
import { AipError, aipError } from '../../protocol/index.js';
import type { ChannelEndpoint } from '../channel/endpoint.js';
import type { BridgeHost } from './bridge.js';

/** The port a Port session forwards to. */
export function portOf(host: BridgeHost): number {
  const p = host.live.params.portNumber;
  return Array.isArray(p) ? Number(p[0]) : 0;
}

/** A `port` channel to the session's port; a refusal becomes SSM_PORT_CONNECT_FAILED (device offline as is). */
export async function openPortChannel(host: BridgeHost): Promise<ChannelEndpoint> {
  const { live, remote } = host;
  const plan = live.type.stream(live.params, { rows: 24, cols: 80 });
  if (!plan || plan.kind !== 'port')
    throw aipError('REMOTE_UNSUPPORTED', { sid: live.id, type: live.type.name, op: 'port forwarding' });
  try {
    return await remote.openChannel(live, 'port', plan.params);
  } catch (err) {
    if (err instanceof AipError && err.kind === 'REMOTE_DEVICE_OFFLINE') throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw aipError('SSM_PORT_CONNECT_FAILED', { port: portOf(host), reason });
  }
}
