/**
 * The knobs of cluster membership (`--cluster`, src/cluster/, README "Running a cluster"), kept apart from
 * config.ts: the zod fields spread into ServerConfig and the flags spread into its flag table. The checks that
 * relate them to other knobs (a shared store, heartbeat ≤ lease / 2) stay with the rest in config.ts.
 */
import { z } from 'zod';

const positiveMs = z.number().int().positive();

export const CLUSTER_CONFIG = {
  /**
   * Redis URL of a cluster: this node joins it (node lease, cluster-wide client directory). Needs a shared store
   * (`--store postgres://…`). Without it nothing changes and no Redis is needed.
   */
  cluster: z
    .string()
    .regex(/^rediss?:\/\//, { error: 'must be a redis:// URL' })
    .optional(),
  /** How long this node's cluster lease lasts without a renewal; a node silent for longer counts as dead. */
  clusterLeaseMs: positiveMs.min(100).default(7_500),
  /**
   * Time between lease renewals, and between looks for dead nodes; at most half of --cluster-lease-ms. A
   * `kill -9` is seen within lease + heartbeat (≤ 10 s by default).
   */
  clusterHeartbeatMs: positiveMs.default(2_000),
  /** Time between full rebuilds of this node's view of other nodes' clients (which also sweeps dead nodes). */
  clusterResyncMs: positiveMs.default(5_000),
  /** Time between probes of the cluster Redis's pub/sub lag (`aipd_cluster_bus_lag_seconds`). */
  clusterProbeMs: positiveMs.default(5_000),
  /** Prefix of every Redis key and channel of the cluster (several clusters, or tests, can share one Redis). */
  clusterPrefix: z
    .string()
    .regex(/^[A-Za-z0-9:._-]{1,64}$/, { error: 'must be 1–64 characters of [A-Za-z0-9:._-]' })
    .default('aipd:'),
  /**
   * PostgreSQL rolls back a transaction of this node left idle this long (a paused process must not hold row locks
   * that other nodes need to mark its sessions crashed).
   */
  storeIdleInTransactionMs: positiveMs.default(5_000),
  /** Entries a node's bus inbox keeps at most (about) before the oldest are trimmed; sessions that lose one fail. */
  clusterInboxMaxLen: z.number().int().min(100).default(100_000),
  /** Bytes a node may hold for other nodes while Redis cannot take them; beyond, cross-node sends are refused. */
  clusterBusQueueBytes: z
    .number()
    .int()
    .positive()
    .default(64 * 1024 * 1024),
  /** How long one blocking read of the bus inbox waits before it reads again. */
  clusterBusBlockMs: positiveMs.default(1_000),
  /** Sessions handed to other nodes that a node remembers (for transfers, channels and requester departures). */
  clusterForwardedMax: z.number().int().positive().default(100_000),
  /** How long a REST cancel or delete of a session another node runs waits for it to end there. */
  clusterCancelWaitMs: positiveMs.default(10_000),
  /** Time between each node's passes over crashed tasks whose resume grace is over (one node fails each). */
  clusterSweepMs: positiveMs.default(2_000),
  /**
   * Graceful drain on SIGTERM in a cluster: how long running tasks may go on before they are cancelled and the
   * clients are closed with 1001 (they reconnect to another node).
   */
  drainTimeoutMs: positiveMs.default(30_000),
};

export const CLUSTER_FLAGS = {
  cluster: { key: 'cluster', type: 'string' },
  'cluster-lease-ms': { key: 'clusterLeaseMs', type: 'int' },
  'cluster-heartbeat-ms': { key: 'clusterHeartbeatMs', type: 'int' },
  'cluster-resync-ms': { key: 'clusterResyncMs', type: 'int' },
  'cluster-prefix': { key: 'clusterPrefix', type: 'string' },
  'cluster-inbox-max-len': { key: 'clusterInboxMaxLen', type: 'int' },
  'cluster-bus-queue-bytes': { key: 'clusterBusQueueBytes', type: 'int' },
  'cluster-bus-block-ms': { key: 'clusterBusBlockMs', type: 'int' },
  'cluster-forwarded-max': { key: 'clusterForwardedMax', type: 'int' },
  'cluster-sweep-ms': { key: 'clusterSweepMs', type: 'int' },
  'cluster-cancel-wait-ms': { key: 'clusterCancelWaitMs', type: 'int' },
  'store-idle-in-transaction-ms': { key: 'storeIdleInTransactionMs', type: 'int' },
  'drain-timeout-ms': { key: 'drainTimeoutMs', type: 'int' },
  'cluster-probe-ms': { key: 'clusterProbeMs', type: 'int' },
} as const;
