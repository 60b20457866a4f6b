/**
 * Shared plumbing for the soak's persistent clients: the endpoint, watch() (a client's events into the counters),
 * canned command answers, cached plan requests, sleep.
 */
import type { ResultInput, ServerMessage } from '../../protocol/index.js';
import type { AipClientBase } from '../../src/client/index.js';
import { planRequest } from '../../src/cli/loadtest-core.js';
import { bucket, type SoakCounters } from './soak-counters.js';
import type { TaskTracker } from './soak-task-tracker.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A parsed JSON frame, loosely typed. */
export type Json = Record<string, unknown>;

export interface Endpoint {
  host: string;
  port: number;
  token: string;
  /** ws://host:port/ws */
  url: string;
}

/** Hooks a persistent client's events into the counters (and, for controllers, the tracker). */
export function watch(c: AipClientBase, role: string, k: SoakCounters, tracker?: TaskTracker): void {
  k.heartbeats.clients++;
  c.on('frame', (m) => {
    if (m.type === 'heartbeat' && m.session_id === null) k.heartbeats.answered++;
    else if (m.type === 'error') k.errors.add(`error frame to a ${role}: ${bucket(m.error ?? '')}`);
    if (tracker) tracker.onFrame(m);
  });
  c.on('disconnected', (info) => {
    if (!k.stopping) k.errors.add(`${role} disconnected (code ${info.code})`);
  });
  c.on('error', (err) => {
    if (!k.stopping) k.errors.add(`${role} client error: ${bucket(err.message)}`);
  });
}

export const okResults = (cmd: ServerMessage): ResultInput[] =>
  (cmd.actions ?? []).map(() => ({ status: 'success', result: 'ok' }));

const PLANS = new Map<number, string>();
export const plan = (steps: number): string => {
  let p = PLANS.get(steps);
  if (!p) PLANS.set(steps, (p = planRequest(steps)));
  return p;
};
