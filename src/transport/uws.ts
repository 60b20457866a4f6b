/**
 * The uWebSockets.js adapter: this file and its parts (src/transport/uws-*.ts) are the only files that touch uWS.
 *
 * - `/ws`: the upgrade head goes to the server's `acceptUpgrade` (token and subprotocol) before anything else.
 * - Every send goes through the connection's OutboundQueue (lossless and backpressure-aware, see outbound.ts;
 *   the connection is uws-connection.ts).
 * - HTTP (uws-http.ts): the head goes to the handler first, so a request can be refused before its body is read;
 *   then the body is read, bounded, and handed over.
 * - Streamed responses (SSE, uws-http-streams.ts): chunked writes with real backpressure — a `write` that uWS
 *   reports as backed up makes the stream wait for `onWritable`; an abort or the server closing ends the stream
 *   (`close`).
 */
import uWS from 'uWebSockets.js';
import { statusLine } from './http.js';
import { EPHEMERAL_PORT_ATTEMPTS, freePort, ListenError, whyNotListening } from './listen.js';
import { maxPayloadOn, WS_PATHS, type Transport, type TransportOptions } from './transport.js';
import { UwsConnection, type UserData } from './uws-connection.js';
import { readHead, serveHttp } from './uws-http.js';

export function startUwsTransport(opts: TransportOptions): Promise<Transport> {
  const live = new Set<UwsConnection>();
  /** Streamed responses under way: each entry ends its stream (closing the server ends them all). */
  const streams = new Set<() => void>();
  const app = uWS.App();
  const { limits } = opts;

  const behavior: uWS.WebSocketBehavior<UserData> = {
    compression: uWS.DISABLED,
    maxPayloadLength: limits.maxPayloadBytes,
    idleTimeout: limits.idleTimeoutSec,
    sendPingsAutomatically: limits.idleTimeoutSec > 0,
    maxBackpressure: limits.maxPayloadBytes + limits.highWaterMarkBytes * 2,
    closeOnBackpressureLimit: 0,
    upgrade: (res, req, context) => {
      const head = readHead(req);
      const key = req.getHeader('sec-websocket-key');
      const extensions = req.getHeader('sec-websocket-extensions');
      const decision = opts.acceptUpgrade(head);
      if (!decision.accept) {
        res.cork(() => {
          res
            .writeStatus(statusLine(decision.status))
            .writeHeader('content-type', 'text/plain')
            .end(decision.body);
        });
        return;
      }
      const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString();
      res.upgrade<UserData>(
        { path: head.path, protocol: decision.protocol, remoteAddress },
        key,
        decision.protocol ?? '',
        extensions,
        context,
      );
    },
    open: (ws) => {
      const ud = ws.getUserData();
      const conn = new UwsConnection(ws, ud.path, ud.protocol, ud.remoteAddress, opts);
      ud.conn = conn;
      live.add(conn);
      conn.handler = opts.onConnection(conn);
    },
    message: (ws, message, isBinary) => {
      ws.getUserData().conn?.handler?.message(message, isBinary);
    },
    drain: (ws) => {
      const conn = ws.getUserData().conn;
      if (!conn) return;
      conn.out.flush();
      if (conn.flushed()) return;
      if (conn.handler?.drained && conn.bufferedBytes() <= limits.highWaterMarkBytes) conn.handler.drained();
    },
    close: (ws, code) => {
      const conn = ws.getUserData().conn;
      if (!conn) return;
      live.delete(conn);
      conn.markClosed();
      conn.handler?.closed(code);
    },
  };
  for (const path of WS_PATHS)
    app.ws<UserData>(path, {
      ...behavior,
      maxPayloadLength: maxPayloadOn(limits, path),
    });

  serveHttp(app, opts, streams);

  return listenExclusive(app, opts.host, opts.port).then((listenSocket) => {
    let listening: uWS.us_listen_socket | null = listenSocket;
    return {
      port: uWS.us_socket_local_port(listenSocket),
      stopListening: () => {
        if (listening) uWS.us_listen_socket_close(listening);
        listening = null;
      },
      closeAll: () => {
        if (listening) uWS.us_listen_socket_close(listening);
        listening = null;
        for (const conn of [...live]) conn.terminate();
        for (const end of [...streams]) end();
      },
      connections: () => live.values(),
    };
  });
}

/** uWS's ListenOptions value; its typings lack the (host, port, options, cb) form the native code takes. */
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1;
interface ListenWithOptions {
  listen(
    host: string,
    port: number,
    options: number,
    cb: (socket: uWS.us_listen_socket | false) => void,
  ): void;
}

/** Listens exclusively on `port`, or on a free port of our choosing for 0 (see listen.ts). Throws ListenError. */
async function listenExclusive(
  app: uWS.TemplatedApp,
  host: string,
  port: number,
): Promise<uWS.us_listen_socket> {
  const attempts = port === 0 ? EPHEMERAL_PORT_ATTEMPTS : 1;
  for (let i = 0; i < attempts; i++) {
    const p = port === 0 ? await freePort(host).catch(() => 0) : port;
    if (p === 0) break;
    const socket = await new Promise<uWS.us_listen_socket | false>((resolve) => {
      (app as unknown as ListenWithOptions).listen(host, p, LIBUS_LISTEN_EXCLUSIVE_PORT, resolve);
    });
    if (socket) return socket;
    if (port !== 0) throw new ListenError(await whyNotListening(host, port));
  }
  throw new ListenError(`cannot find a free port on ${host}`);
}
