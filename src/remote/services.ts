/**
 * Services: a TCP listener on the server (loopback by default, an ephemeral port unless asked) whose every
 * connection is forwarded to a port on the session's device through its own `port` channel. The channel's
 * credit window paces both directions, so a slow side stalls the other instead of filling memory. Closing a
 * listener (or ending the session) closes its connections and resets their channels.
 */
import net from 'node:net';
import { aipError } from '../../protocol/index.js';
import { ChannelDuplex } from '../channel/stream.js';
import type { LiveRemote, RemoteSessions } from './remote-sessions.js';

export interface ServiceInfo {
  readonly remote_port: number;
  readonly local_host: string;
  readonly local_port: number;
  readonly url: string;
  readonly connections: number;
}

interface Listener {
  readonly server: net.Server;
  readonly remotePort: number;
  readonly host: string;
  readonly port: number;
  readonly sockets: Set<net.Socket>;
  close(): void;
}

export class RemoteServices {
  private readonly bySession = new Map<string, Map<number, Listener>>();
  /** Listeners being opened per session (counted against the limit before they listen). */
  private readonly opening = new Map<string, number>();

  constructor(
    private readonly remote: RemoteSessions,
    private readonly bindHost: string,
    private readonly maxPerSession: number,
  ) {}

  list(live: LiveRemote): ServiceInfo[] {
    return [...(this.bySession.get(live.id)?.values() ?? [])].map(info);
  }

  /** Opens a listener forwarding to `remotePort` on the device; resolves once it listens. */
  async open(live: LiveRemote, remotePort: number, localPort = 0): Promise<ServiceInfo> {
    const caps = this.remote.capabilities(live);
    if (!caps.channels.includes('port'))
      throw aipError('REMOTE_DEVICE_CANNOT', { id: live.agentId, what: 'port forwarding (--allow-port)' });
    if (caps.ports.length > 0 && !caps.ports.includes(remotePort))
      throw aipError('PORT_NOT_ALLOWED', { host: '127.0.0.1', port: remotePort });
    let mine = this.bySession.get(live.id);
    const opening = this.opening.get(live.id) ?? 0;
    if ((mine?.size ?? 0) + opening >= this.maxPerSession)
      throw aipError('SERVICE_TOO_MANY', { max: this.maxPerSession });
    this.opening.set(live.id, opening + 1);
    const sockets = new Set<net.Socket>();
    const server = net.createServer({ allowHalfOpen: true }, (socket) =>
      this.forward(live, remotePort, socket, sockets),
    );
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: this.bindHost, port: localPort, exclusive: true }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      const n = (this.opening.get(live.id) ?? 1) - 1;
      if (n > 0) this.opening.set(live.id, n);
      else this.opening.delete(live.id);
    }
    if (this.remote.parties(live.id) === null) {
      // The session ended while the listener was opening: it must not outlive it.
      server.close();
      throw aipError('REMOTE_NOT_LIVE', { sid: live.id, status: 'ended' });
    }
    server.on('error', (err) => live.log.warn({ err }, 'service listener error'));
    const addr = server.address() as net.AddressInfo;
    const l: Listener = {
      server,
      remotePort,
      host: addr.address,
      port: addr.port,
      sockets,
      close: () => {
        server.close();
        for (const s of sockets) s.destroy();
        sockets.clear();
      },
    };
    if (!mine) this.bySession.set(live.id, (mine = new Map<number, Listener>()));
    mine.set(l.port, l);
    const closer = (): void => void this.closeListener(live, l);
    live.closers.add(closer);
    this.closers.set(l, closer);
    this.remote.record(live, 'remote.service.opened', {
      remote_port: remotePort,
      local_host: l.host,
      local_port: l.port,
    });
    live.log.info({ remote_port: remotePort, local_port: l.port }, 'service listener opened');
    return info(l);
  }

  /** Closes the listener on `localPort`; throws SERVICE_NOT_FOUND. */
  close(live: LiveRemote, localPort: number): void {
    const l = this.bySession.get(live.id)?.get(localPort);
    if (!l) throw aipError('SERVICE_NOT_FOUND', { port: localPort });
    const closer = this.closers.get(l);
    if (closer) live.closers.delete(closer);
    this.closeListener(live, l);
  }

  /** Listening sockets across all sessions (tests and metrics). */
  get listening(): number {
    let n = 0;
    for (const m of this.bySession.values()) n += m.size;
    return n;
  }

  private readonly closers = new Map<Listener, () => void>();

  private closeListener(live: LiveRemote, l: Listener): void {
    this.closers.delete(l);
    const mine = this.bySession.get(live.id);
    if (!mine?.delete(l.port)) return;
    if (mine.size === 0) this.bySession.delete(live.id);
    l.close();
    this.remote.record(live, 'remote.service.closed', { remote_port: l.remotePort, local_port: l.port });
    live.log.info({ remote_port: l.remotePort, local_port: l.port }, 'service listener closed');
  }

  private forward(live: LiveRemote, remotePort: number, socket: net.Socket, sockets: Set<net.Socket>): void {
    sockets.add(socket);
    socket.pause();
    const release = this.remote.hold(live);
    socket.once('close', () => {
      sockets.delete(socket);
      release();
    });
    socket.on('error', () => undefined);
    this.remote
      .openChannel(live, 'port', { port: remotePort, host: '127.0.0.1' })
      .then((ep) => {
        if (socket.destroyed) return ep.reset(aipError('CHANNEL_CANCELLED'));
        const duplex = new ChannelDuplex(ep);
        socket.pipe(duplex);
        duplex.pipe(socket);
        socket.resume();
        socket.once('close', () => duplex.destroy());
        duplex.on('error', () => socket.destroy());
      })
      .catch((err: unknown) => {
        live.log.info({ err, remote_port: remotePort }, 'service connection refused by the device');
        socket.destroy();
      });
  }
}

function info(l: Listener): ServiceInfo {
  const host = l.host.includes(':') ? `[${l.host}]` : l.host;
  return {
    remote_port: l.remotePort,
    local_host: l.host,
    local_port: l.port,
    url: `tcp://${host}:${l.port}`,
    connections: l.sockets.size,
  };
}
