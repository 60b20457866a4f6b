/**
 * UFO's `MessageValidator` (ufo-aip.md §3.7): boolean checks over already-parsed messages.
 * UFO defines and unit-tests them but never calls them; aipd uses `isValidTaskRequest`-style rules
 * where the reference recommends it (e.g. rejecting an empty `request`, quirk Q5).
 */
import type { ClientMessage, ServerMessage } from './messages.js';

/** `validate_registration`: type is `register` and `client_id` is non-empty (a constellation may omit `target_id`). */
export function isValidRegistration(msg: ClientMessage): boolean {
  return msg.type === 'register' && !!msg.client_id;
}

/** `validate_task_request`: type is `task`, and both `request` and `client_id` are non-empty. */
export function isValidTaskRequest(msg: ClientMessage): boolean {
  return msg.type === 'task' && !!msg.request && !!msg.client_id;
}

/** `validate_command_results`: type is `command_results`, `prev_response_id` non-empty, `action_results` not null. */
export function isValidCommandResults(msg: ClientMessage): boolean {
  return msg.type === 'command_results' && !!msg.prev_response_id && msg.action_results !== null;
}

/** `validate_server_message`: `type` and `status` set; a `command` also needs non-empty `actions` and a `response_id`. */
export function isValidServerMessage(msg: ServerMessage): boolean {
  if (!msg.type || !msg.status) return false;
  if (msg.type === 'command') return !!msg.actions && msg.actions.length > 0 && !!msg.response_id;
  return true;
}

/** The same four checks under UFO's class name. */
export const MessageValidator = {
  validateRegistration: isValidRegistration,
  validateTaskRequest: isValidTaskRequest,
  validateCommandResults: isValidCommandResults,
  validateServerMessage: isValidServerMessage,
} as const;
