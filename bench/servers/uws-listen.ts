/**
 * Shared by the uWS bench servers: their socket settings, and listen on 127.0.0.1, port 0, print `listening <port>`
 * (what the bench waits for), and on SIGTERM/SIGINT close the listen socket, run `onStop` and exit.
 */
import uWS from 'uWebSockets.js';

/** The bench servers' WebSocket settings: no compression, no idle timeout or pings, 16 MiB frames. */
export const BENCH_WS_SETTINGS = {
  compression: uWS.DISABLED,
  idleTimeout: 0,
  sendPingsAutomatically: false,
  maxPayloadLength: 16 * 1024 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
} as const;

export function listenUntilSignal(app: uWS.TemplatedApp, name: string, onStop?: () => void): void {
  let listenSocket: uWS.us_listen_socket | false = false;
  app.listen('127.0.0.1', 0, (token) => {
    listenSocket = token;
    if (!token) {
      console.error(`${name}: listen failed`);
      process.exit(1);
    }
    console.log(`listening ${uWS.us_socket_local_port(token)}`);
  });
  const stop = (): void => {
    if (listenSocket) uWS.us_listen_socket_close(listenSocket);
    onStop?.();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
