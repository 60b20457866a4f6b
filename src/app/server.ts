/**
 * The composition root: config → logger → state (directory, sessions, results, events) → tasks and channels →
 * HTTP router → a transport. `startServer` is what `aipd serve`, the tests and the benchmarks run; the
 * `memory` transport gives the same server with no sockets (the middle test tier).
 */
import { CloseCode, negotiateCodec } from '../../protocol/index.js';
import { ChannelRouter, type ChannelRouterOptions } from '../channel/router.js';
import { finalizeConfig, type ServerConfig, type ServerConfigInput } from '../config.js';
import { createApi } from '../http/api.js';
import type { Router } from '../http/router.js';
import { createLogger, type Logger } from '../logger.js';
import { ConnectionHandler } from '../server/connection-handler.js';
import type { ServerContext } from '../server/context.js';
import { TaskService } from '../server/tasks.js';
import { SessionFactory } from '../session/factory.js';
import { agentRegistryFor } from './agents.js';
import type { ClusterNode } from './cluster-node.js';
import { wireCluster } from './cluster-wiring.js';
import type { ClientDirectory, ClientLink } from '../state/client-directory.js';
import { EventBus } from '../state/events.js';
import { MemoryClientDirectory, type LocalClientRecord } from '../state/memory-client-directory.js';
import type { SessionStore } from '../state/session-store.js';
import { SessionService } from '../records/session-service.js';
import { SessionTaskResults } from '../records/task-results.js';
import { TaskRecords } from '../server/task-records.js';
import { TaskRecovery } from '../server/recovery.js';
import { assertPortFree } from '../transport/listen.js';
import { lockDataDir, nodeIdFor, openStore } from './store.js';
import { MemoryTransport } from '../transport/memory.js';
import type { Transport, TransportOptions } from '../transport/transport.js';
import { startUwsTransport } from '../transport/uws.js';
import { upgradeGate } from './upgrade.js';
import { ObservedHttp } from '../http/observer.js';
import { Metrics } from '../ops/metrics.js';
import { RedisProbe, withTimeout } from '../ops/redis-probe.js';
import { TimedSessionStore } from '../ops/timed-store.js';

import { RemoteExecution, streamSessionId, STREAM_SUBPROTOCOL } from '../remote/index.js';
import { STREAM_CONTROL_MAX_BYTES } from '../remote/stream-socket.js';
import { SsmEndpoint, ssmSessionId } from '../ssm/index.js';

export interface StartOptions {
  logger?: Logger;
  sessionFactory?: SessionFactory;
  /** Data-channel router options (see src/channel/router-options.ts). */
  channels?: ChannelRouterOptions;
  /** `uws` (a real port, the default) or `memory` (no sockets: drive it with `server.memory`). */
  transport?: 'uws' | 'memory';
  /** The session store to use instead of the one `config.store` names (it is opened here and closed on close). */
  sessions?: SessionStore;
}

/** A client directory whose records carry their link as `conn` (both implementations do). */
export interface ServerDirectory extends ClientDirectory {
  get(clientId: string): LocalClientRecord | undefined;
}

export interface RunningServer {
  readonly port: number;
  readonly config: ServerConfig;
  /**
   * The client directory: this node's clients, each with its link as `conn`; in a cluster also every other
   * node's clients, each with a proxy link.
   */
  readonly registry: ServerDirectory;
  /** This node's cluster membership (`--cluster`), or null. */
  readonly cluster: ClusterNode | null;
  readonly tasks: TaskService;
  readonly channels: ChannelRouter;
  readonly events: EventBus;
  /** The HTTP routes (the OpenAPI document is generated from them). */
  readonly http: Router;
  /** The durable session records. */
  readonly sessions: SessionService;
  readonly results: SessionTaskResults;
  readonly recovery: TaskRecovery;
  /** Typed sessions on devices (execute, files, services, streams). */
  readonly remote: RemoteExecution;
  /** The SSM-compatible data channels of typed sessions (`/sessions/{id}/ssm`). */
  readonly ssm: SsmEndpoint;
  readonly nodeId: string;
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
  const log = opts.logger ?? createLogger(config.logLevel, undefined, config.logFormat);
  const events = new EventBus((err, type) => log.error({ err, event: type }, 'event listener failed'));
  // Refuse a busy port before touching the store: a second server must not mark the first one's sessions crashed.
  if (opts.transport !== 'memory' && config.port !== 0) await assertPortFree(config.host, config.port);
  const unlock = lockDataDir(config);
  const nodeId = nodeIdFor(config);
  let store: SessionStore;
  try {
    store = opts.sessions ?? (await openStore(config, log));
    if (opts.sessions) await store.open();
  } catch (err) {
    unlock();
    throw err;
  }
  // --cluster: a node lease and the cluster-wide client directory on Redis. Without it, no Redis is needed.
  let cluster: ClusterNode | null = null;
  if (config.cluster) {
    try {
      cluster = await (
        await import('./cluster-node.js')
      ).ClusterNode.start({
        url: config.cluster,
        prefix: config.clusterPrefix,
        nodeId,
        leaseMs: config.clusterLeaseMs,
        heartbeatMs: config.clusterHeartbeatMs,
        resyncMs: config.clusterResyncMs,
        inboxMaxLen: config.clusterInboxMaxLen,
        busQueueBytes: config.clusterBusQueueBytes,
        busBlockMs: config.clusterBusBlockMs,
        log,
      });
    } catch (err) {
      await store.close();
      unlock();
      throw err;
    }
  }
  const directory: ServerDirectory = cluster?.directory ?? new MemoryClientDirectory();
  // Store writes announce their latency; the metrics (unless --metrics off) listen to the lifecycle events.
  store = new TimedSessionStore(store, events);
  const metrics =
    config.metrics === 'on' ? new Metrics(events, { store, node: cluster ? nodeId : undefined }) : null;
  const probe = config.cluster
    ? new RedisProbe(
        config.cluster,
        config.clusterPrefix,
        nodeId,
        config.clusterProbeMs,
        log.child({ component: 'ops' }),
      )
    : null;
  if (probe) metrics?.setBusLag(() => probe.lag());
  const sessions = new SessionService(store, log.child({ component: 'sessions' }), {
    maxEventDataBytes: config.eventDataMaxBytes,
    eventPageMaxChars: config.eventPageMaxBytes,
    serialWrites: cluster !== null,
  });
  // --redis: session lifecycle events also go to Redis `events:session` (bounded; Redis down never blocks us).
  const redis = config.redis
    ? new (await import('../records/redis-publisher.js')).RedisPublisher(
        sessions.feed,
        { url: config.redis },
        log.child({ component: 'redis' }),
      )
    : null;
  const results = new SessionTaskResults(sessions, config.dispatchAliasCacheSize);
  results.shared = cluster?.aliases(config.dispatchAliasTtlMs) ?? null;
  const factory =
    opts.sessionFactory ??
    new SessionFactory({
      cancelGraceMs: config.cancelGraceMs,
      agents: agentRegistryFor(config),
      logger: log.child({ component: 'agents' }),
    });
  const records = new TaskRecords(sessions, nodeId, log.child({ component: 'tasks' }));
  const tasks = new TaskService(config, directory, records, events, factory, log);
  const recovery = new TaskRecovery(
    tasks,
    records,
    directory,
    events,
    {
      resume: config.resume,
      resumeGraceMs: config.resumeGraceMs,
      ...(cluster
        ? {
            clusterSweepMs: config.clusterSweepMs,
            stillLive: async () => (await cluster.lease.renew()) === 'live',
          }
        : {}),
    },
    log.child({ component: 'recovery' }),
  );
  try {
    await recovery.markCrashed();
  } catch (err) {
    metrics?.close();
    await probe?.close();
    await redis?.close();
    await cluster?.close();
    await store.close();
    unlock();
    throw err;
  }
  const channels: ChannelRouter = new ChannelRouter(
    {
      clientIdOf: (peer) => directory.clientOf(peer as ClientLink)?.clientId ?? null,
      sessionParties: (sid): { requesterId: string; executorId: string } | null =>
        tasks.parties(sid) ?? remote.sessions.parties(sid),
      connectionOf: (id) => directory.link(id) ?? null,
    },
    {
      logger: log.child({ component: 'channels' }),
      openTimeoutMs: config.channelOpenTimeoutMs,
      maxChannelsPerConnection: config.maxChannelsPerConnection,
      maxChannelsPerSession: config.maxChannelsPerSession,
      onChannel: (e) => {
        if (e.type === 'opened') events.emit('channel.opened', { sessionId: e.sessionId, kind: e.kind });
        else events.emit('channel.closed', { sessionId: e.sessionId, kind: e.kind, bytes: e.bytes });
      },
      ...opts.channels,
    },
  );
  const remote: RemoteExecution = new RemoteExecution(
    config,
    sessions,
    directory,
    channels,
    nodeId,
    log.child({ component: 'remote' }),
  );
  events.on('client.gone', (e) => remote.exec.deviceGone(e.clientId));
  const ssm = new SsmEndpoint(remote, log.child({ component: 'ssm' }));
  const wiring = cluster ? wireCluster(cluster, { config, tasks, channels, events, log }) : null;
  events.on('session.ended', (e) => channels.onSessionEnded(e.sessionId));
  // A channel's bytes go into its session's log (GET /sessions/{id}/metrics counts them).
  events.on('channel.closed', (e) => records.channelClosed(e.sessionId, e.kind, e.bytes));
  const ctx: ServerContext = {
    config,
    log,
    directory,
    events,
    tasks,
    channels: wiring?.channelSink ?? channels,
    extraResults: remote.exec,
    counters: { unregistered: 0 },
  };
  const headLimits = {
    maxUrlBytes: config.maxUrlBytes,
    maxHeaderCount: config.maxHeaderCount,
    maxHeaderBytes: config.maxHeaderBytes,
    maxDepth: config.maxDepth,
    maxContainers: config.maxContainers,
  };
  const readyStore = store;
  const router = createApi(config.apiKey, headLimits, {
    directory,
    sessions,
    results,
    tasks,
    remote,
    log: log.child({ component: 'http' }),
    ops: {
      apiKey: config.apiKey,
      nodeId,
      metrics,
      metricsToken: config.metricsToken,
      routes: () => router.list(),
      ready: async () => {
        const ms = config.readyTimeoutMs;
        const [storeOk, redisOk] = await Promise.all([
          withTimeout(
            readyStore.get('readyz-probe').then(() => true),
            ms,
          ),
          probe?.reachable(ms),
        ]);
        const checks: Record<string, boolean> = { store: storeOk };
        if (redisOk !== undefined) checks.redis = redisOk;
        return checks;
      },
    },
  });
  const http = new ObservedHttp(router, events, log.child({ component: 'http' }));
  const wsGate = upgradeGate(config.apiKey, (offer) => negotiateCodec(offer).subprotocol ?? null);

  /** The socket layer's frame limit for an application limit (see --socket-payload-factor). */
  const socketLimit = (bytes: number): number => Math.min(bytes * config.socketPayloadFactor, 2 ** 31 - 1);
  const transportOptions: TransportOptions = {
    host: config.host,
    port: config.port,
    limits: {
      maxPayloadBytes: socketLimit(config.maxPayloadBytes),
      // the application's own limit, not the socket layer's (which is larger by --socket-payload-factor)
      largestOutboundFrameBytes: config.maxPayloadBytes,
      // A stream or SSM socket holds one frame before it has shown its token: the limit is what those sockets
      // read at most (a larger frame is refused by them anyway), not the AIP one.
      maxPayloadBytesByPath: {
        '/sessions/:id/stream': socketLimit(Math.max(config.streamInputMaxBytes, STREAM_CONTROL_MAX_BYTES)),
        '/sessions/:id/ssm': socketLimit(config.ssmMaxFrameBytes),
      },
      idleTimeoutSec: config.idleTimeoutSec,
      outboundBudgetBytes: config.outboundBudgetBytes,
      slowConsumerTimeoutMs: config.slowConsumerTimeoutMs,
      slowConsumerHardCap: config.slowConsumerHardCap,
      highWaterMarkBytes: config.highWaterMarkBytes,
      maxHttpBodyBytes: config.maxHttpBodyBytes,
      maxHttpBodyBytesInFlight: config.maxHttpBodyBytesInFlight,
    },
    log,
    acceptUpgrade: (req) => {
      if (req.path === '/ws') return wsGate(req);
      // A stream socket authenticates with its single-use token in its first frame, not with the API key. It must
      // name a session live on this node: sockets for no session would only take places among those waiting.
      const ssmId = ssmSessionId(req.path);
      const streamId = ssmId === null ? streamSessionId(req.path) : null;
      if (ssmId === null && streamId === null) return { accept: false, status: 404, body: 'Not Found' };
      if (!remote.sessions.isLive((ssmId ?? streamId)!))
        return { accept: false, status: 404, body: 'No such live session on this node' };
      if (ssmId !== null)
        return ssm.accepts()
          ? { accept: true, protocol: null }
          : { accept: false, status: 503, body: 'Too many stream sockets waiting for their token' };
      if (!remote.acceptsStream())
        return { accept: false, status: 503, body: 'Too many stream sockets waiting for their token' };
      const offer = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
      return { accept: true, protocol: offer.includes(STREAM_SUBPROTOCOL) ? STREAM_SUBPROTOCOL : null };
    },
    onConnection: (conn) => {
      const sid = conn.path === '/ws' ? null : streamSessionId(conn.path);
      if (sid !== null) return remote.streamSocket(conn, sid);
      const ssmSid = conn.path === '/ws' ? null : ssmSessionId(conn.path);
      if (ssmSid !== null) return ssm.socket(conn, ssmSid);
      const handler = new ConnectionHandler(conn, ctx);
      handler.open();
      return handler;
    },
    onBackpressure: (conn, over, bufferedBytes) =>
      events.emit(over ? 'backpressure.on' : 'backpressure.off', { connId: conn.id, bufferedBytes }),
    http,
  };
  const memory = opts.transport === 'memory' ? new MemoryTransport(transportOptions) : null;
  let transport: Transport;
  try {
    await wiring?.start(recovery);
    transport = memory ?? (await startUwsTransport(transportOptions));
  } catch (err) {
    metrics?.close();
    await probe?.close();
    await redis?.close();
    await cluster?.close();
    await store.close();
    unlock();
    throw err;
  }
  await recovery.start();
  log.info(
    {
      node: nodeId,
      store: config.store === 'memory' || config.store === 'sqlite' ? config.store : 'postgres',
      cluster: cluster ? { prefix: config.clusterPrefix, incarnation: cluster.lease.incarnation } : null,
    },
    'session store open',
  );

  let closing: Promise<void> | null = null;
  return {
    port: transport.port,
    config,
    registry: directory,
    cluster,
    tasks,
    channels,
    events,
    http: router,
    sessions,
    results,
    recovery,
    remote,
    ssm,
    nodeId,
    memory,
    close: () =>
      (closing ??= (async () => {
        // In a cluster: no new registrations, running tasks may finish (devices then reconnect elsewhere).
        await wiring?.drain();
        transport.stopListening();
        await remote.sessions.shutdown();
        await tasks.shutdown();
        for (const conn of [...transport.connections()])
          conn.close(CloseCode.GOING_AWAY, 'server shutting down');
        await waitUntil(() => [...transport.connections()].length === 0, config.shutdownGraceMs);
        transport.closeAll();
        recovery.stop();
        metrics?.close();
        await probe?.close();
        await cluster?.close();
        await redis?.close();
        await store.close();
        unlock();
        log.info('server stopped');
      })()),
  };
}

async function waitUntil(done: () => boolean, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}
