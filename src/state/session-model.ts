/**
 * The durable session model (the reference session service's, plus what aipd adds): one record per session,
 * whether a client keeps it through REST or aipd runs it as an AIP task. JSON field names are the wire's.
 */
import type { TransitionTable } from '../lib/fsm.js';

export const SESSION_STATUSES = ['active', 'paused', 'completed', 'crashed', 'failed', 'cancelled'] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];

/** The one transition table of session status; completed, failed and cancelled are terminal. */
export const STATUS_TRANSITIONS: TransitionTable<SessionStatus> = {
  active: ['paused', 'completed', 'crashed', 'failed', 'cancelled'],
  paused: ['active', 'completed', 'crashed', 'failed', 'cancelled'],
  crashed: ['active', 'failed', 'cancelled'],
  completed: [],
  failed: [],
  cancelled: [],
};

export const RUNTIME_BACKENDS = ['local', 'kubernetes', 'unknown'] as const;
export type RuntimeBackend = (typeof RUNTIME_BACKENDS)[number];

export type JsonObject = Record<string, unknown>;

export interface StatusEntry {
  readonly status: SessionStatus;
  /** ISO-8601 UTC with milliseconds. */
  readonly at: string;
  readonly reason?: string;
}

/** A state of the AIP task's own machine (created → running → completed | failed | cancelled), with its time. */
export interface TaskStateEntry {
  readonly state: string;
  readonly at: string;
  readonly reason?: string;
}

/** What an AIP task session has beyond the common model. */
export interface TaskFields {
  readonly task_name: string;
  /** The client that sent the task. */
  readonly requester: string;
  /** The device that executes it (also the session's agent_id). */
  readonly executor: string;
  readonly platform: string;
  readonly mode: string;
  /** The request as received; kept so a crashed task can resume. */
  readonly request: string;
  /** The task machine's state and history (what `/api/sessions` shows). */
  readonly state: string;
  readonly state_history: readonly TaskStateEntry[];
  /** `task_end.result` and `task_end.error` once it ended. */
  readonly result: unknown;
  readonly error: string | null;
  /** True once the requester was sent `task_end` (a reconnecting requester is sent it otherwise). */
  readonly requester_notified: boolean;
}

export interface SessionRecord {
  readonly id: string;
  readonly agent_id: string;
  readonly session_type: string;
  readonly status: SessionStatus;
  readonly context: JsonObject;
  readonly checkpoint: JsonObject | null;
  readonly runtime_backend: RuntimeBackend;
  readonly runtime_metadata: JsonObject;
  readonly created_at: string;
  readonly updated_at: string;
  readonly status_history: readonly StatusEntry[];
  /** AIP task fields, or null for a plain record. */
  readonly task: TaskFields | null;
  /** The node running this session, or null for a record a client keeps for an agent elsewhere. Not on the wire. */
  readonly managed_by: string | null;
  /** Bumped by every write; a write names the version it read (optimistic concurrency). Not on the wire. */
  readonly version: number;
}

/** A session's public JSON: everything but the internal fields. */
export function sessionJson(r: SessionRecord): Record<string, unknown> {
  const { managed_by: _m, version: _v, ...wire } = r;
  return wire;
}

export function isTerminalStatus(s: SessionStatus): boolean {
  return STATUS_TRANSITIONS[s].length === 0;
}
