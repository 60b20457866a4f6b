/**
 * The server side of `--cluster`: plugs the cross-node bus into tasks, channels and the directory, reaps dead
 * nodes into crashed sessions, gives sessions up when this node is fenced, and drains on a graceful stop.
 */
import type { ServerConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { ChannelRouter } from '../channel/router.js';
import { CrossNode } from '../server/cross-node.js';
import type { ChannelSink } from '../server/context.js';
import type { TaskRecovery } from '../server/recovery.js';
import type { TaskService } from '../server/tasks.js';
import type { EventBus } from '../state/events.js';
import type { ClientLink } from '../state/client-directory.js';
import type { ClusterNode } from './cluster-node.js';

export interface ClusterWiring {
  readonly crossNode: CrossNode;
  /** The channel entry for connections: frames of channels another node routes go there. */
  readonly channelSink: ChannelSink;
  /** Starts the bus (before serving) and the reaper (once recovery runs). */
  start(recovery: TaskRecovery): Promise<void>;
  /**
   * Graceful drain: no new registrations here; running tasks may finish for up to `drainTimeoutMs`. Resolves
   * when none is left or the time is up (the caller then cancels the rest and closes sockets with 1001).
   */
  drain(): Promise<void>;
}

/** The reason a dead node's sessions are marked crashed with. */
export function deadNodeReason(nodeId: string): string {
  return `aipd node '${nodeId}' died (its cluster lease expired) while this session was active`;
}

export function wireCluster(
  cluster: ClusterNode,
  deps: {
    readonly config: ServerConfig;
    readonly tasks: TaskService;
    readonly channels: ChannelRouter;
    readonly events: EventBus;
    readonly log: Logger;
  },
): ClusterWiring {
  const { config, tasks, channels, events, log } = deps;
  const { directory } = cluster;
  const crossNode = new CrossNode({
    bus: cluster.bus,
    directory,
    tasks,
    channelFrame: (peer, bytes) => channels.onFrame(peer, bytes),
    channelIds: channels,
    maxForwarded: config.clusterForwardedMax,
    cancelWaitMs: config.clusterCancelWaitMs,
    log,
  });
  directory.setRemoteSender(crossNode.sender);
  // Channels through a proxy link end when its client leaves the view (as a local socket's do when it closes).
  directory.onRemoteGone((link) => channels.onConnectionClosed(link));
  // Channels other nodes opened to clients here end when their node's incarnation is no longer live.
  cluster.reaper.watch((nodes) => {
    const live = new Map<string, string>();
    for (const n of nodes) if (n.incarnation !== null) live.set(n.nodeId, n.incarnation);
    crossNode.foreign.retainLive(live);
  });
  events.on('client.gone', (e) => crossNode.clientGone(e.clientId, e.reason));
  cluster.lease.onFenced(() => {
    const n = tasks.abandonAll();
    if (n > 0) log.warn({ sessions: n }, 'fenced: gave up live sessions (other nodes may resume them)');
  });
  const channelSink: ChannelSink = {
    onFrame: (peer: ClientLink, bytes: Uint8Array) => {
      const client = directory.clientOf(peer);
      if (client && crossNode.channelFromClient(client, bytes)) return;
      channels.onFrame(peer, bytes);
    },
    onConnectionClosed: (peer: ClientLink) => channels.onConnectionClosed(peer),
  };
  return {
    crossNode,
    channelSink,
    async start(recovery) {
      await cluster.bus.start(crossNode);
      directory.onRemoteSeen((id) => recovery.deliver(id));
      cluster.reaper.start(async (nodeId) => {
        const n = await recovery.markCrashed(nodeId, deadNodeReason(nodeId));
        log.warn({ dead: nodeId, sessions: n }, 'dead node reaped');
        if (n === 0) return;
        // Devices already back here resume now; the rest fail when their grace is over (not a sweep later).
        void recovery.sweep();
        const t = setTimeout(() => void recovery.sweep(), config.resumeGraceMs + 50);
        t.unref();
      });
    },
    async drain() {
      directory.drain();
      const live = tasks.live.size;
      log.info({ tasks: live, timeout_ms: config.drainTimeoutMs }, 'draining: no new registrations here');
      const deadline = Date.now() + config.drainTimeoutMs;
      while (tasks.live.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      log.info({ left: tasks.live.size }, 'drain over');
    },
  };
}
