/**
 * The parties of a task (ufo-aip.md §6.3, §13 Q4, Q6): which device a requester's task runs on, and which live
 * sessions each client owns or executes, so that a disconnect of either party ends them at once.
 */
import { aipError, type AipError } from '../../protocol/index.js';
import type { ClientDirectory, ClientInfo } from '../state/client-directory.js';

/** The device that executes a task `requester` asked for on `targetId`, or why it cannot run. */
export function resolveExecutor(
  directory: ClientDirectory,
  requester: ClientInfo,
  targetId: string | null,
): string | AipError {
  if (requester.clientType === 'device') {
    if (targetId && targetId !== requester.clientId) return aipError('DEVICE_TARGETS_OTHER');
    if (!directory.get(requester.clientId))
      return aipError('DEVICE_NOT_CONNECTED', { id: requester.clientId });
    return requester.clientId;
  }
  if (!targetId) return aipError('TARGET_REQUIRED');
  // Q6: a constellation that declared its device may only run tasks there, as with device info.
  if (requester.targetId && requester.targetId !== targetId) return aipError('TARGET_NOT_AUTHORIZED');
  const target = directory.get(targetId);
  if (!target) return aipError('TARGET_NOT_CONNECTED', { id: targetId });
  if (target.clientType !== 'device') return aipError('TARGET_NOT_DEVICE');
  return targetId;
}

/** client id → ids of the live sessions it owns or executes. */
export class SessionsByClient {
  private readonly byClient = new Map<string, Set<string>>();

  get(clientId: string): ReadonlySet<string> | undefined {
    return this.byClient.get(clientId);
  }

  index(clientId: string, sid: string): void {
    let set = this.byClient.get(clientId);
    if (!set) this.byClient.set(clientId, (set = new Set()));
    set.add(sid);
  }

  unindex(clientId: string, sid: string): void {
    const set = this.byClient.get(clientId);
    if (!set) return;
    set.delete(sid);
    if (set.size === 0) this.byClient.delete(clientId);
  }
}
