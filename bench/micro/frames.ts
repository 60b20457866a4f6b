/** The pre-built messages the micro benchmarks feed through the hot path: a `command_results` and a `command`. */
import { randomUUID } from 'node:crypto';
import type { ClientMessageInput, ServerMessageInput } from '../../protocol/index.js';

export const resultsMsg: ClientMessageInput = {
  type: 'command_results',
  status: 'continue',
  client_type: 'device',
  session_id: randomUUID(),
  client_id: 'dev-1',
  prev_response_id: randomUUID(),
  action_results: [{ status: 'success', result: 'ok', error: null, call_id: randomUUID() }],
  timestamp: new Date().toISOString(),
  request_id: randomUUID(),
};

export const commandMsg: ServerMessageInput = {
  type: 'command',
  status: 'continue',
  agent_name: 'LinuxAgent',
  actions: [{ tool_name: 'noop', tool_type: 'action', parameters: { i: 0 }, call_id: randomUUID() }],
  session_id: randomUUID(),
  task_name: 'bench',
  timestamp: new Date().toISOString(),
  response_id: randomUUID(),
};
