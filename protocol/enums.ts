/**
 * AIP enumerations. Wire values are lowercase and case-sensitive (ufo-aip.md §3.1).
 * Each is declared once here as a zod enum; the TypeScript type of the same name is derived from it.
 */
import { z } from 'zod';

export const ClientMessageType = z.enum([
  'task',
  'heartbeat',
  'command_results',
  'error',
  'register',
  'task_end',
  'device_info_request',
  'device_info_response',
]);
export type ClientMessageType = z.infer<typeof ClientMessageType>;

export const ServerMessageType = z.enum([
  'task',
  'heartbeat',
  'task_end',
  'command',
  'error',
  'device_info_request',
  'device_info_response',
]);
export type ServerMessageType = z.infer<typeof ServerMessageType>;

/** `status` in both envelopes. There is no `cancelled`. */
export const TaskStatus = z.enum(['continue', 'completed', 'failed', 'ok', 'error']);
export type TaskStatus = z.infer<typeof TaskStatus>;

export const ClientType = z.enum(['device', 'constellation']);
export type ClientType = z.infer<typeof ClientType>;

export const ResultStatus = z.enum(['success', 'failure', 'skipped', 'none']);
export type ResultStatus = z.infer<typeof ResultStatus>;

export const ToolType = z.enum(['data_collection', 'action']);
export type ToolType = z.infer<typeof ToolType>;

/** Platforms a device may register with (`metadata.platform`); it selects the session class. */
export const Platform = z.enum(['windows', 'linux', 'mobile']);
export type Platform = z.infer<typeof Platform>;

/** Python enum names, used verbatim in UFO's "Unknown message type: ClientMessageType.<NAME>" text. */
export function pythonEnumName(type: ClientMessageType): string {
  return `ClientMessageType.${type.toUpperCase()}`;
}
