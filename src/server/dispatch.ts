/**
 * The message table of a registered connection: decode → validate → pin identity → handler. Encoding is the
 * peer's (peer.ts). Each AIP message type the server accepts has one entry here, with the fields it requires;
 * anything else gets UFO's "unknown message type" error.
 */
import { AipError, aipError, pythonEnumName, type ClientMessage } from '../../protocol/index.js';
import { uuid } from '../lib/uuid.js';
import type { Logger } from '../logger.js';
import { deviceSystemInfo, type ClientInfo, type ClientLink } from '../state/client-directory.js';
import type { ServerContext } from './context.js';

export interface DispatchScope {
  readonly ctx: ServerContext;
  readonly client: ClientInfo;
  readonly peer: ClientLink;
  readonly log: Logger;
}

type MessageType = ClientMessage['type'];
type Field = keyof ClientMessage;

interface Entry {
  /** Fields that must be non-null; a message without them is dropped (`drop`) or answered with an error. */
  readonly requires?: readonly Field[];
  readonly missing?: 'drop' | 'error';
  handle(scope: DispatchScope, msg: ClientMessage): void;
}

const TABLE: Partial<Record<MessageType, Entry>> = {
  heartbeat: {
    handle: ({ peer }) =>
      void peer.send({ type: 'heartbeat', status: 'ok', timestamp: now(), response_id: uuid() }),
  },
  // Handlers read `scope.log` only when they log: it is a getter that makes a pino child logger (ConnScope).
  task: {
    handle: (scope, msg) => {
      const { ctx, client, peer } = scope;
      const r = ctx.tasks.start(client, msg);
      if (r instanceof AipError) {
        scope.log.info({ code: r.code, session_id: msg.session_id }, 'task refused');
        sendError(peer, r.message);
      }
    },
  },
  command_results: {
    // UFO drops results it cannot place; so does aipd (S8: they never create a session).
    requires: ['session_id', 'prev_response_id'],
    missing: 'drop',
    handle: (scope, msg) => {
      const { ctx, client } = scope;
      if (!ctx.tasks.deliverResults(client, msg) && !ctx.extraResults?.deliverResults(client, msg))
        scope.log.debug({ session_id: msg.session_id }, 'command_results dropped');
    },
  },
  device_info_request: { handle: deviceInfo },
  device_info_response: {
    handle: (scope) => scope.log.debug('device_info_response received (pull model reserved)'),
  },
  error: {
    handle: ({ peer, log }, msg) => {
      log.info({ client_error: msg.error }, 'client reported an error');
      sendError(peer, aipError('CLIENT_ERROR_ECHO', { error: msg.error }).message);
    },
  },
};

/** Handles one validated message from a registered client. */
export function dispatchMessage(scope: DispatchScope, msg: ClientMessage): void {
  const { client, peer } = scope;
  // Identity pinning (§5.5). Heartbeats skip the role check (Q1): Galaxy sends client_type "device" there.
  if (msg.client_id !== null && msg.client_id !== client.clientId)
    return sendError(peer, aipError('CLIENT_ID_MISMATCH').message);
  if (msg.type !== 'heartbeat' && msg.client_type !== client.clientType)
    return sendError(peer, aipError('CLIENT_TYPE_MISMATCH').message);
  const entry = TABLE[msg.type];
  if (!entry)
    return sendError(peer, aipError('UNKNOWN_MESSAGE_TYPE', { pyName: pythonEnumName(msg.type) }).message);
  const absent = entry.requires?.find((f) => msg[f] === null || msg[f] === undefined || msg[f] === '');
  if (absent !== undefined) {
    if (entry.missing === 'drop')
      return scope.log.debug({ type: msg.type, field: absent }, 'message without a required field dropped');
    return sendError(
      peer,
      aipError('VALIDATION', { detail: `${absent} is required for ${msg.type}` }).message,
    );
  }
  // Handlers see the pinned identity; a message that carries it already (the usual case) is passed as it is.
  entry.handle(
    scope,
    msg.client_id === client.clientId && msg.client_type === client.clientType
      ? msg
      : { ...msg, client_id: client.clientId, client_type: client.clientType },
  );
}

function deviceInfo({ ctx, client, peer }: DispatchScope, msg: ClientMessage): void {
  if (client.clientType !== 'constellation') return sendError(peer, aipError('DEVICE_INFO_ROLE').message);
  const deviceId = msg.target_id ?? client.targetId;
  if (client.targetId && deviceId !== client.targetId)
    return sendError(peer, aipError('DEVICE_INFO_NOT_AUTHORIZED').message);
  const info = deviceId ? deviceSystemInfo(ctx.directory, deviceId) : null;
  peer.send({
    type: 'device_info_response',
    status: 'ok',
    timestamp: now(),
    response_id: msg.request_id,
    result: info ?? { error: aipError('DEVICE_INFO_MISSING', { id: String(deviceId) }).message },
  });
}

export function sendError(peer: ClientLink, text: string): void {
  peer.send({ type: 'error', status: 'error', error: text, timestamp: now(), response_id: uuid() });
}

export function now(): string {
  return new Date().toISOString();
}
