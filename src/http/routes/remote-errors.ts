/**
 * The HTTP status of each error a remote-execution route can meet, in one table: the request's fault (400, 403,
 * 404, 409, 416, 422), or the device's (502: it failed or broke the protocol; 504: it did not answer in time).
 */
import { AipError, type ErrorName } from '../../../protocol/index.js';
import type { HttpResponse } from '../../transport/http.js';
import { detail } from '../responses.js';
import { Detail, notFoundDoc, ok } from '../route-docs.js';
import type { ResponseDoc } from '../router.js';

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

type Docs = Readonly<Record<number, ResponseDoc>>;

/** The OpenAPI answers of a route on a live remote session, besides its success (from the table above). */
export const liveDocs = {
  404: notFoundDoc,
  409: ok(
    'The session is not active here or not of a remote type, or its device is offline, busy or does not offer this',
    Detail,
  ),
} satisfies Docs;

/** …of a route that reaches the session's device: it failed or broke the protocol (502), or did not answer (504). */
export const deviceDocs = {
  ...liveDocs,
  502: ok('The device failed the request or broke the protocol', Detail),
  504: ok('The device did not answer in time', Detail),
} satisfies Docs;

/** …of a route that names a path under the device's root (a file, a folder, or execute's `cwd`). */
export const pathDocs = {
  ...deviceDocs,
  400: ok('The path is a file where a folder is needed, or a folder where a file is needed', Detail),
  403: ok('The path leads out of the device’s root', Detail),
  404: ok('No such session, or no such file or folder on the device', Detail),
} satisfies Docs;
