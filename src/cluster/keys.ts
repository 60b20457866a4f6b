/**
 * The Redis key schema of a cluster. Every key starts with one prefix (`aipd:` by default; tests use a fresh
 * prefix per run so they never collide):
 *
 * - `{p}epoch`          string: a random id set once by the first node to join. Every heartbeat reads it: a
 *                       missing or different epoch means Redis lost its data (a restart without persistence).
 * - `{p}node:<id>`      string: the node's current incarnation, with a TTL of `clusterLeaseMs` (the lease).
 * - `{p}nodes`          ZSET: node id → last heartbeat (Redis server time, ms).
 * - `{p}fence`          integer: INCR'd by every successful directory claim, so it only grows.
 * - `{p}dir`            HASH: client_id → entry JSON `{"f":fence,"n":node,"i":incarnation,"c":client info JSON}`.
 * - `{p}dir:changes`    pub/sub channel: `{"op":"add","id":…,"e":entry}` and `{"op":"del","id":…,"f":fence}`.
 * - `{p}inbox:<id>`     STREAM: the node's bus inbox (bus.ts), capped with `MAXLEN ~`, trimmed as it is read.
 * - `{p}alias:<id>`     string (with a TTL): the task name a dispatch id (`/api/dispatch`) stands for.
 * - `{p}reap:<id>:<inc>` string (SET NX, with a TTL): which node reaps a dead incarnation (reaper.ts).
 *
 * An entry is live while its node's lease key holds the entry's incarnation. Scripts read lease keys they derive
 * from an entry (`{p}node:` + node): fine on one Redis server, not on Redis Cluster (all keys would need one
 * hash slot, e.g. a `{p}` hash tag).
 */
export interface ClusterKeys {
  readonly prefix: string;
  readonly epoch: string;
  readonly nodes: string;
  readonly fence: string;
  readonly dir: string;
  readonly changes: string;
  /** The prefix of lease keys; a node's lease is `nodeKeyPrefix + nodeId`. */
  readonly nodeKeyPrefix: string;
  node(nodeId: string): string;
  inbox(nodeId: string): string;
  reap(nodeId: string, incarnation: string): string;
  alias(dispatchId: string): string;
}

export const DEFAULT_CLUSTER_PREFIX = 'aipd:';

export function clusterKeys(prefix: string = DEFAULT_CLUSTER_PREFIX): ClusterKeys {
  const nodeKeyPrefix = `${prefix}node:`;
  return {
    prefix,
    epoch: `${prefix}epoch`,
    nodes: `${prefix}nodes`,
    fence: `${prefix}fence`,
    dir: `${prefix}dir`,
    changes: `${prefix}dir:changes`,
    nodeKeyPrefix,
    node: (nodeId) => nodeKeyPrefix + nodeId,
    inbox: (nodeId) => `${prefix}inbox:${nodeId}`,
    reap: (nodeId, incarnation) => `${prefix}reap:${nodeId}:${incarnation}`,
    alias: (dispatchId) => `${prefix}alias:${dispatchId}`,
  };
}
