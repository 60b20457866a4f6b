/**
 * The composition root: config → logger → state (directory, sessions, results, events) → tasks and channels →
 * HTTP router → a transport. `startServer` is what `aipd serve`, the tests and the benchmarks run; the
 * `memory` transport gives the same server with no sockets (the middle test tier).
 */
import { CloseCode, negotiateCodec } from '../../protocol/index.js';
import { ChannelRouter, type ChannelRouterOptions } from '../channel/router.js';
import { finalizeConfig, type ServerConfig, type ServerConfigInput } from '../config.js';
import { createApi } from '../http/api.js';
import { createLogger, type Logger } from '../logger.js';
import { ConnectionHandler } from '../server/connection-handler.js';
import type { ServerContext } from '../server/context.js';
import { TaskService } from '../server/tasks.js';
import { SessionFactory } from '../session/factory.js';
import type { ClientLink } from '../state/client-directory.js';
import { EventBus } from '../state/events.js';
import { MemoryClientDirectory } from '../state/memory-client-directory.js';
import { MemorySessionStore } from '../state/memory-session-store.js';
import { MemoryTaskResultStore } from '../state/memory-task-results.js';
import type { SessionStore } from '../state/session-store.js';
import type { TaskResultStore } from '../state/task-results.js';
import { MemoryTransport } from '../transport/memory.js';
import type { Transport, TransportOptions } from '../transport/transport.js';
import { startUwsTransport } from '../transport/uws.js';
import { upgradeGate } from './upgrade.js';

export interface StartOptions {
  logger?: Logger;
  sessionFactory?: SessionFactory;
  /** Data-channel router options (see src/channel/router.ts). */
  channels?: ChannelRouterOptions;
  /** `uws` (a real port, the default) or `memory` (no sockets: drive it with `server.memory`). */
  transport?: 'uws' | 'memory';
  /** State implementations; in-memory by default. */
  sessions?: SessionStore;
  results?: TaskResultStore;
}

export interface RunningServer {
  readonly port: number;
  readonly config: ServerConfig;
  /** The client directory (this node's clients, each with its link). */
  readonly registry: MemoryClientDirectory;
  readonly tasks: TaskService;
  readonly channels: ChannelRouter;
  readonly events: EventBus;
  /** The in-memory transport when started with `transport: 'memory'`, else null. */
  readonly memory: MemoryTransport | null;
  /** Graceful shutdown: stop accepting, end every task with `task_end` failed, close sockets with 1001. */
  close(): Promise<void>;
}

export async function startServer(
  input: ServerConfigInput | ServerConfig,
  opts: StartOptions = {},
): Promise<RunningServer> {
  const config = finalizeConfig(input);
  const log = opts.logger ?? createLogger(config.logLevel);
  const events = new EventBus((err, type) => log.error({ err, event: type }, 'event listener failed'));
  const directory = new MemoryClientDirectory();
  const sessions = opts.sessions ?? new MemorySessionStore();
  const results =
    opts.results ??
    new MemoryTaskResultStore({
      maxEntries: config.taskResultCacheSize,
      maxBytes: config.taskResultCacheBytes,
      maxAliases: config.dispatchAliasCacheSize,
    });
  const factory = opts.sessionFactory ?? new SessionFactory({ cancelGraceMs: config.cancelGraceMs });
  const tasks = new TaskService(config, { directory, sessions, results, events }, factory, log);
  const channels = new ChannelRouter(
    {
      clientIdOf: (peer) => directory.clientOf(peer as ClientLink)?.clientId ?? null,
      sessionParties: (sid) => tasks.parties(sid),
      connectionOf: (id) => directory.link(id) ?? null,
    },
    {
      logger: log.child({ component: 'channels' }),
      openTimeoutMs: config.channelOpenTimeoutMs,
      onChannel: (e) =>
        events.emit(e.type === 'opened' ? 'channel.opened' : 'channel.closed', {
          sessionId: e.sessionId,
          kind: e.kind,
          reason: e.type,
        }),
      ...opts.channels,
    },
  );
  events.on('session.ended', (e) => channels.onSessionEnded(e.sessionId));
  const ctx: ServerContext = {
    config,
    log,
    directory,
    events,
    tasks,
    channels,
    counters: { unregistered: 0 },
  };
  const headLimits = {
    maxUrlBytes: config.maxUrlBytes,
    maxHeaderCount: config.maxHeaderCount,
    maxHeaderBytes: config.maxHeaderBytes,
  };
  const http = createApi(config.apiKey, headLimits, {
    directory,
    sessions,
    results,
    tasks,
    log: log.child({ component: 'http' }),
  });

  const transportOptions: TransportOptions = {
    host: config.host,
    port: config.port,
    limits: {
      maxPayloadBytes: Math.min(config.maxPayloadBytes * config.socketPayloadFactor, 2 ** 31 - 1),
      idleTimeoutSec: config.idleTimeoutSec,
      outboundBudgetBytes: config.outboundBudgetBytes,
      slowConsumerTimeoutMs: config.slowConsumerTimeoutMs,
      slowConsumerHardCap: config.slowConsumerHardCap,
      highWaterMarkBytes: config.highWaterMarkBytes,
      maxHttpBodyBytes: config.maxHttpBodyBytes,
      maxHttpBodyBytesInFlight: config.maxHttpBodyBytesInFlight,
    },
    log,
    acceptUpgrade: upgradeGate(config.apiKey, (offer) => negotiateCodec(offer).subprotocol ?? null),
    onConnection: (conn) => {
      const handler = new ConnectionHandler(conn, ctx);
      handler.open();
      return handler;
    },
    onBackpressure: (conn, over, bufferedBytes) =>
      events.emit(over ? 'backpressure.on' : 'backpressure.off', { connId: conn.id, bufferedBytes }),
    http,
  };
  const memory = opts.transport === 'memory' ? new MemoryTransport(transportOptions) : null;
  const transport: Transport = memory ?? (await startUwsTransport(transportOptions));

  let closing: Promise<void> | null = null;
  return {
    port: transport.port,
    config,
    registry: directory,
    tasks,
    channels,
    events,
    memory,
    close: () =>
      (closing ??= (async () => {
        transport.stopListening();
        await tasks.shutdown();
        for (const conn of [...transport.connections()])
          conn.close(CloseCode.GOING_AWAY, 'server shutting down');
        await waitUntil(() => [...transport.connections()].length === 0, config.shutdownGraceMs);
        transport.closeAll();
        log.info('server stopped');
      })()),
  };
}

async function waitUntil(done: () => boolean, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}
