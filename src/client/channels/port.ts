/**
 * Device side of `port` channels: connect to a local TCP port and pipe both ways.
 *
 * params {port, host?='127.0.0.1'}. By default only loopback hosts are allowed; `ports` narrows that to a list
 * (the device agent's `--allow-port`), and an empty list refuses every port. The connection is made before
 * ACCEPT, so an unreachable port gives a REJECT (PORT_CONNECT_FAILED). Either side's half-close is passed on.
 */
import net from 'node:net';
import { aipError } from '../../../protocol/index.js';
import type { IncomingChannel } from '../../channel/mux.js';
import { ChannelDuplex } from '../../channel/stream.js';

export interface PortPolicy {
  /** Decides which host:port may be reached. Default: loopback only. */
  readonly allow?: (host: string, port: number) => boolean;
  /** Only these ports, on loopback hosts (ignored when `allow` is given). */
  readonly ports?: readonly number[];
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export function handlePortChannel(incoming: IncomingChannel, policy: PortPolicy = {}): void {
  const port = incoming.params.port;
  const host = incoming.params.host ?? '127.0.0.1';
  if (
    typeof port !== 'number' ||
    !Number.isInteger(port) ||
    port < 1 ||
    port > 65535 ||
    typeof host !== 'string'
  )
    return incoming.reject(
      aipError('CHANNEL_BAD_PARAMS', { detail: 'port needs port (1–65535) and optional host' }),
    );
  const allowed = policy.allow
    ? policy.allow(host, port)
    : LOOPBACK.has(host) && (policy.ports === undefined || policy.ports.includes(port));
  if (!allowed) return incoming.reject(aipError('PORT_NOT_ALLOWED', { host, port }));
  const socket = net.connect({ host, port, allowHalfOpen: true });
  const onConnectError = (err: Error): void =>
    incoming.reject(aipError('PORT_CONNECT_FAILED', { host, port, reason: err.message }));
  socket.once('error', onConnectError);
  socket.once('connect', () => {
    socket.off('error', onConnectError);
    const duplex = new ChannelDuplex(incoming.accept());
    socket.pipe(duplex);
    duplex.pipe(socket);
    socket.on('error', (err) => duplex.destroy(err));
    duplex.on('error', () => socket.destroy());
  });
}
