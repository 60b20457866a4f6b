/**
 * The composition root: config → logger → registry, tasks, channels → uWS transport.
 * `startServer` is what `aipd serve`, the tests and the benchmarks run.
 */
import { finalizeConfig, type ServerConfig, type ServerConfigInput } from '../config.js';
import { createApi } from '../http/api.js';
import { createLogger, type Logger } from '../logger.js';
import { SessionFactory } from '../session/factory.js';
import { startUwsTransport } from '../transport/uws.js';
import { CloseCode } from '../../protocol/index.js';
import { ChannelRouter, type ChannelRouterOptions } from '../channel/router.js';
import { ConnectionHandler } from './connection-handler.js';
import type { ChannelSink, ServerContext } from './context.js';
import { ClientRegistry } from './registry.js';
import { TaskService } from './tasks.js';

export interface StartOptions {
  logger?: Logger;
  sessionFactory?: SessionFactory;
  /** Data-channel router options (see src/channel/router.ts). */
  channels?: ChannelRouterOptions;
}

export interface RunningServer {
  readonly port: number;
  readonly config: ServerConfig;
  readonly registry: ClientRegistry;
  readonly tasks: TaskService;
  readonly channels: ChannelRouter;
  /** Graceful shutdown: stop accepting, end every task with `task_end` failed, close sockets with 1001. */
  close(): Promise<void>;
}

export async function startServer(input: ServerConfigInput | ServerConfig, opts: StartOptions = {}): Promise<RunningServer> {
  const config = finalizeConfig(input);
  const log = opts.logger ?? createLogger(config.logLevel);
  const registry = new ClientRegistry();
  const tasks = new TaskService(config, registry, opts.sessionFactory ?? new SessionFactory(), log);
  const channels = new ChannelRouter(
    {
      clientIdOf: (conn) => registry.recordOf(conn)?.clientId ?? null,
      sessionParties: (sid) => tasks.parties(sid),
      connectionOf: (id) => registry.get(id)?.conn ?? null,
    },
    { logger: log.child({ component: 'channels' }), openTimeoutMs: config.channelOpenTimeoutMs, ...opts.channels },
  );
  tasks.onSessionEnded = (sid) => channels.onSessionEnded(sid);
  const sink: ChannelSink = channels;
  const ctx: ServerContext = { config, log, registry, tasks, channels: sink, counters: { unregistered: 0 } };
  const api = createApi({ apiKey: config.apiKey, registry, tasks, log: log.child({ component: 'http' }) });

  const transport = await startUwsTransport({
    host: config.host,
    port: config.port,
    apiKey: config.apiKey,
    maxPayloadBytes: config.maxPayloadBytes,
    idleTimeoutSec: config.idleTimeoutSec,
    outboundBudgetBytes: config.outboundBudgetBytes,
    slowConsumerTimeoutMs: config.slowConsumerTimeoutMs,
    log,
    onConnection: (conn) => {
      const handler = new ConnectionHandler(conn, ctx);
      handler.open();
      return handler;
    },
    onHttp: api,
  });

  let closing: Promise<void> | null = null;
  return {
    port: transport.port,
    config,
    registry,
    tasks,
    channels,
    close: () =>
      (closing ??= (async () => {
        transport.stopListening();
        await tasks.shutdown();
        for (const conn of [...transport.connections()]) conn.close(CloseCode.GOING_AWAY, 'server shutting down');
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
