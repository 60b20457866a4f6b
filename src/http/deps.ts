/** What the route modules need from the rest of the server: state behind its interfaces, and task control. */
import type { Logger } from '../logger.js';
import type { RemoteExecution } from '../remote/index.js';
import type { ClientDirectory } from '../state/client-directory.js';
import type { SessionService } from '../records/session-service.js';
import type { TaskResultStore } from '../state/task-results.js';
import type { Metrics } from '../ops/metrics.js';
import type { Route } from './router.js';

/** What the operations routes need (src/http/routes/ops.ts). */
export interface OpsDeps {
  readonly apiKey: string;
  /** This node's id (the `node` of its clients). */
  readonly nodeId: string;
  /** Null with `--metrics off`. */
  readonly metrics: Metrics | null;
  readonly metricsToken?: string;
  /** Each dependency and whether it answered (`store`, and `redis` in a cluster). */
  ready(): Promise<Record<string, boolean>>;
  /** Every registered route (the OpenAPI document is generated from them). */
  routes(): readonly Route[];
}

/** Control over the tasks this node runs. */
export interface TaskControl {
  /** Cancels a live session: its requester gets `task_end` failed. False if it is not live here. */
  cancelById(sessionId: string, reason?: string): boolean;
  /** Resolves once a live session has ended and its `task_end` went out (at once if it is not live here). */
  ended(sessionId: string): Promise<void>;
  /** Cancels a running session here or on another node of a cluster; resolves once it ended. False if none runs it. */
  cancelAnywhere(sessionId: string, reason: string, wait: boolean): Promise<boolean>;
}

export interface ApiDeps {
  readonly directory: ClientDirectory;
  readonly sessions: SessionService;
  readonly results: TaskResultStore;
  readonly tasks: TaskControl;
  /** Typed sessions on devices: execute, files, services, streams. */
  readonly remote: RemoteExecution;
  readonly log: Logger;
  readonly ops: OpsDeps;
}
