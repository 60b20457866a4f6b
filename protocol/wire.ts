/**
 * Builds wire objects in UFO's serialisation form: every declared key present, in declaration order,
 * absent values as null. The key orders come from the schemas in messages.ts.
 */
import {
  CLIENT_MESSAGE_KEYS,
  COMMAND_KEYS,
  RESULT_KEYS,
  SERVER_MESSAGE_KEYS,
  type ClientMessageInput,
  type CommandInput,
  type ResultInput,
  type ServerMessageInput,
} from './messages.js';

type Wire = Record<string, unknown>;

function ordered(src: object, keys: readonly string[]): Wire {
  const out: Wire = {};
  const s = src as Wire;
  for (const k of keys) {
    const v = s[k];
    out[k] = v === undefined ? null : v;
  }
  return out;
}

export function commandWire(c: CommandInput): Wire {
  return ordered(c, COMMAND_KEYS);
}

export function resultWire(r: ResultInput): Wire {
  return ordered(r, RESULT_KEYS);
}

export function serverWire(msg: ServerMessageInput): Wire {
  const out = ordered(msg, SERVER_MESSAGE_KEYS);
  if (Array.isArray(msg.actions)) out.actions = msg.actions.map(commandWire);
  return out;
}

export function clientWire(msg: ClientMessageInput): Wire {
  const out = ordered(msg, CLIENT_MESSAGE_KEYS);
  if (out.client_type === null) out.client_type = 'device';
  if (Array.isArray(msg.action_results)) out.action_results = msg.action_results.map(resultWire);
  return out;
}
