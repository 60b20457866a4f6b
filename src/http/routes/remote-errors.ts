/**
 * The HTTP status of each error a remote-execution route can meet, in one table: the request's fault (400, 403,
 * 404, 409, 416, 422), or the device's (502: it failed or broke the protocol; 504: it did not answer in time).
 */
import { AipError, type ErrorName } from '../../../protocol/index.js';
import type { HttpResponse } from '../../transport/http.js';
import { detail } from '../responses.js';

const STATUS: Partial<Record<ErrorName, number>> = {
  HTTP_SESSION_NOT_FOUND: 404,
  SESSION_EXISTS: 409,
  REMOTE_UNKNOWN_DEVICE: 404,
  REMOTE_DEVICE_OFFLINE: 409,
  REMOTE_NOT_A_DEVICE: 409,
  REMOTE_BAD_PARAMETERS: 422,
  REMOTE_NOT_LIVE: 409,
  REMOTE_UNSUPPORTED: 409,
  REMOTE_BUSY: 409,
  REMOTE_DEVICE_CANNOT: 409,
  SERVICE_NOT_FOUND: 404,
  SERVICE_TOO_MANY: 409,
  MULTIPART_INVALID: 400,
  FILE_PATH_ESCAPE: 403,
  FILE_NOT_FOUND: 404,
  FILE_NOT_A_DIRECTORY: 400,
  FILE_NOT_A_FILE: 400,
  FILE_BAD_OFFSET: 416,
  PORT_NOT_ALLOWED: 403,
  STREAM_EXEC_DISABLED: 409,
  CHANNEL_KIND_UNSUPPORTED: 409,
  CHANNEL_BAD_PARAMS: 400,
  CHANNEL_PEER_NOT_CONNECTED: 409,
  CHANNEL_SESSION_NOT_LIVE: 409,
  CHANNEL_TOO_MANY: 409,
  CHANNEL_SESSION_TOO_MANY: 409,
  CHANNEL_OPEN_TIMEOUT: 504,
};

export function remoteErrorStatus(err: AipError): number {
  return STATUS[err.kind] ?? 502;
}

/** An error as its HTTP answer; anything that is not an AipError is rethrown (500, logged by the transport). */
export function remoteError(err: unknown): HttpResponse {
  if (err instanceof AipError) return detail(remoteErrorStatus(err), err.message);
  throw err;
}
