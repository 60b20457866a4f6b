/**
 * Bare uWebSockets.js echo server: the reference ceiling for the ws-based scenarios.
 * Settings follow perf-baselines §2: compression off, idleTimeout 0, maxPayloadLength 16 MiB,
 * maxBackpressure 64 MiB. Prints `listening <port>` on stdout; exits on SIGTERM/SIGINT.
 */
import uWS from 'uWebSockets.js';

const host = '127.0.0.1';
let dropped = 0;
let queued = 0;
let listenSocket: uWS.us_listen_socket | false = false;
const app = uWS.App().ws('/*', {
  compression: uWS.DISABLED,
  idleTimeout: 0,
  sendPingsAutomatically: false,
  maxPayloadLength: 16 * 1024 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  message: (ws, msg, isBinary) => {
    const r = ws.send(msg, isBinary);
    if (r === 2) dropped++;
    else if (r === 0) queued++;
  },
});
app.listen(host, 0, (token) => {
  listenSocket = token;
  if (!token) {
    console.error('uws-echo: listen failed');
    process.exit(1);
  }
  console.log(`listening ${uWS.us_socket_local_port(token)}`);
});
const stop = (): void => {
  if (dropped || queued) console.error(`uws-echo: send() dropped=${dropped} backpressured=${queued}`);
  if (listenSocket) uWS.us_listen_socket_close(listenSocket);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
