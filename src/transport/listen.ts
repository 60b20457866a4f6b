/**
 * How aipd's listen socket is set up (uWS itself does the bind):
 *
 * - **Exclusive.** uWS sets SO_REUSEPORT by default, which lets a second process bind the same port and have the
 *   kernel split connections between two servers that know nothing of each other. aipd listens with
 *   LIBUS_LISTEN_EXCLUSIVE_PORT, so a second server on a busy port fails at start (`ListenError`, exit 2).
 * - **Instant restart.** On an explicit port uWS sets SO_REUSEADDR, so a restarted server binds at once even with
 *   the old server's connections in TIME-WAIT. uWS does not set it when asked for port 0, so aipd never asks for
 *   port 0: it picks a free ephemeral port itself (a throwaway bind through Node) and listens on that port
 *   explicitly, retrying with another port if one is taken in between. A server restarted on the port `--port 0`
 *   gave it therefore binds at once as well.
 */
import { createServer } from 'node:net';

/** The server could not listen: the port is in use, not permitted, or the address is not local. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
}

/** Attempts at an ephemeral port before giving up (another process may take each one first). */
export const EPHEMERAL_PORT_ATTEMPTS = 5;

/** A port the OS considers free on `host` now. */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Why `host:port` cannot be bound, in words (Node's bind reports the errno that uWS does not). */
export function whyNotListening(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      const reason =
        err.code === 'EADDRINUSE'
          ? `port ${port} on ${host} is already in use (is another aipd running?)`
          : err.code === 'EACCES'
            ? `permission denied to listen on ${host}:${port}`
            : err.code === 'EADDRNOTAVAIL'
              ? `${host} is not an address of this machine`
              : `cannot listen on ${host}:${port}: ${err.code ?? err.message}`;
      resolve(reason);
    });
    srv.listen({ host, port, exclusive: true }, () =>
      srv.close(() => resolve(`cannot listen on ${host}:${port}`)),
    );
  });
}

/** Throws ListenError when `host:port` cannot be bound now (checked before a server touches its state). */
export async function assertPortFree(host: string, port: number): Promise<void> {
  const ok = await new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
  if (!ok) throw new ListenError(await whyNotListening(host, port));
}
