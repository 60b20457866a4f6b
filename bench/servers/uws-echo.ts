/**
 * Bare uWebSockets.js echo server: the reference ceiling for the ws-based scenarios.
 * Settings follow perf-baselines §2: compression off, idleTimeout 0, maxPayloadLength 16 MiB,
 * maxBackpressure 64 MiB. Prints `listening <port>` on stdout; exits on SIGTERM/SIGINT.
 */
import uWS from 'uWebSockets.js';
import { BENCH_WS_SETTINGS, listenUntilSignal } from './uws-listen.js';

let dropped = 0;
let queued = 0;
const app = uWS.App().ws('/*', {
  ...BENCH_WS_SETTINGS,
  message: (ws, msg, isBinary) => {
    const r = ws.send(msg, isBinary);
    if (r === 2) dropped++;
    else if (r === 0) queued++;
  },
});
listenUntilSignal(app, 'uws-echo', () => {
  if (dropped || queued) console.error(`uws-echo: send() dropped=${dropped} backpressured=${queued}`);
});
