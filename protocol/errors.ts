/**
 * The one catalogue of aipd errors.
 *
 * - Error codes are grouped in numbered ranges and never reused (retire a code with a comment instead).
 * - WebSocket close codes used by aipd live in 4000–4999 (plus the standard 1000/1001/1009/1011).
 * - `text` builds the exact string sent in an `error` frame. Where UFO has a text (ufo-aip.md §6.7,
 *   §8.4, §9.2, §9.6) it is kept byte for byte, so clients that match on it keep working.
 */

export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  /** A text frame that is not valid UTF-8. */
  INVALID_PAYLOAD: 1007,
  /** A frame over --max-payload-bytes. */
  MESSAGE_TOO_BIG: 1009,
  INTERNAL: 1011,
  /** The first frame was not a valid `register`. */
  REGISTRATION_FAILED: 4000,
  /** No `register` arrived within the registration timeout. */
  REGISTRATION_TIMEOUT: 4001,
  /** `client_id` is already registered by a live connection. */
  DUPLICATE_CLIENT_ID: 4002,
  /** A constellation registered for a device that is not connected. */
  TARGET_NOT_CONNECTED: 4003,
  /** Too many connections are waiting to register. */
  TOO_MANY_UNREGISTERED: 4004,
  /** The peer stayed over its outbound budget for longer than the slow-consumer timeout. */
  SLOW_CONSUMER: 4008,
  /** A stream WebSocket's token was invalid, expired, used, or for another session. */
  STREAM_TOKEN_INVALID: 4010,
  /** A stream WebSocket sent no token in time. */
  STREAM_TOKEN_TIMEOUT: 4011,
  /** A stream WebSocket sent a message that is not part of the stream protocol. */
  STREAM_BAD_MESSAGE: 4012,
  /** A stream WebSocket sent more input than the device could take and the budget holds. */
  STREAM_INPUT_OVER_BUDGET: 4013,
  /** The session's device could not open the stream (offline, refused, or failed). */
  STREAM_OPEN_FAILED: 4014,
  /** A cluster node cannot take the registration now (its Redis is unreachable, or it was fenced): retry. */
  CLUSTER_RETRY: 4020,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

interface Spec<P> {
  readonly code: number;
  readonly text: (p: P) => string;
}
function spec<P = void>(code: number, text: (p: P) => string): Spec<P> {
  return { code, text };
}
type Id = { id: string };

export const INVALID_TASK_NAME_TEXT =
  "Invalid task_name: must be a non-empty string of characters [A-Za-z0-9._-] and must not start with '.'";

/** Every error aipd can report, by name. Ranges: 1xxx decode, 2xxx registration and identity, 3xxx tasks and
 * sessions, 4xxx device info, 5xxx server and transport, 6xxx HTTP API, 7xxx data channels. */
export const Errors = {
  // 1000–1099: decoding a frame
  FRAME_TOO_LARGE: spec<{ size: number; max: number }>(
    1000,
    (p) => `Frame of ${p.size} bytes exceeds the limit of ${p.max} bytes`,
  ),
  INVALID_UTF8: spec(1001, () => 'Frame is not valid UTF-8'),
  INVALID_JSON: spec<{ detail: string }>(1002, (p) => `Invalid JSON: ${p.detail}`),
  INVALID_MSGPACK: spec<{ detail: string }>(1003, (p) => `Invalid msgpack: ${p.detail}`),
  TOO_DEEP: spec<{ max: number }>(1004, (p) => `Message nesting exceeds the maximum depth of ${p.max}`),
  NOT_AN_OBJECT: spec<{ got: string }>(1005, (p) => `Message must be a JSON object, got ${p.got}`),
  FORBIDDEN_KEY: spec<{ key: string; path: string }>(1006, (p) => `Forbidden key '${p.key}' at ${p.path}`),
  TOO_MANY_CONTAINERS: spec<{ max: number }>(
    1008,
    (p) => `Message holds more than ${p.max} objects and arrays`,
  ),
  UNSUPPORTED_VALUE: spec<{ what: string; path: string }>(
    1010,
    (p) => `Unsupported value at ${p.path}: ${p.what}; AIP messages carry JSON values only`,
  ),
  // 1100–1199: schema validation
  VALIDATION: spec<{ detail: string }>(1100, (p) => p.detail),

  // 2000–2099: registration and identity (UFO texts)
  REGISTRATION_INVALID: spec<{ reason: string }>(2000, (p) => `Registration failed: ${p.reason}`),
  TARGET_NOT_CONNECTED: spec<Id>(2001, (p) => `Target device '${p.id}' is not connected`),
  DUPLICATE_CLIENT_ID: spec<Id>(
    2002,
    (p) => `client_id '${p.id}' is already registered; duplicate registrations are not allowed`,
  ),
  CLIENT_ID_MISMATCH: spec(2003, () => 'client_id does not match the registered connection'),
  CLIENT_TYPE_MISMATCH: spec(2004, () => 'client_type does not match the registered connection'),
  NOT_REGISTERED: spec(2005, () => 'Connection is not registered; refusing privileged message'),
  REGISTRATION_TIMEOUT: spec<{ ms: number }>(2006, (p) => `Registration timed out after ${p.ms} ms`),
  TOO_MANY_UNREGISTERED: spec<{ max: number }>(
    2007,
    (p) => `Too many unregistered connections (limit ${p.max})`,
  ),

  // 3000–3099: tasks and sessions (UFO texts first)
  TARGET_REQUIRED: spec(3000, () => 'Constellation task requests require target_id'),
  TARGET_NOT_DEVICE: spec(3001, () => 'Constellation tasks may only target device clients'),
  DEVICE_TARGETS_OTHER: spec(3002, () => 'Device clients may not target other devices'),
  DEVICE_NOT_CONNECTED: spec<Id>(3003, (p) => `Device '${p.id}' is not connected`),
  SESSION_OWNED: spec<{ sid: string }>(3004, (p) => `session_id '${p.sid}' is owned by another client`),
  SESSION_RUNNING: spec<{ sid: string }>(3005, (p) => `session_id '${p.sid}' is already running`),
  EMPTY_REQUEST: spec(3006, () => 'Task requests require a non-empty request'),
  TARGET_NOT_AUTHORIZED: spec(3007, () => 'Not authorized to run tasks on this device'),
  PLATFORM_NOT_SUPPORTED: spec<{ platform: string }>(
    3008,
    (p) => `Service session not supported on ${p.platform}`,
  ),
  MODE_NOT_SUPPORTED: spec<{ mode: string; platform: string; supported: readonly string[] }>(
    3009,
    (p) => `The ${p.mode} mode is not supported on ${p.platform}. Supported modes: ${p.supported.join(', ')}`,
  ),
  DEVICE_DISCONNECTED: spec(3010, () => 'Task was cancelled because target device disconnected'),
  REQUESTER_DISCONNECTED: spec(3011, () => 'Task was cancelled because the requesting client disconnected'),
  SERVER_SHUTDOWN: spec(3012, () => 'Task was cancelled because the server is shutting down'),
  SLOW_CONSUMER_CANCELLED: spec<Id>(
    3013,
    (p) => `Task was cancelled because client '${p.id}' could not keep up (slow consumer)`,
  ),
  COMMAND_FAILED: spec<{ command: string; reason: string }>(
    3014,
    (p) =>
      `Error occurred while executing command ${p.command}: ${p.reason}, please retry or execute a different command.`,
  ),
  COMMAND_TIMEOUT: spec<{ ms: number }>(3015, (p) => `command timed out after ${p.ms} ms`),
  EXECUTOR_GONE: spec<Id>(3016, (p) => `executor '${p.id}' disconnected`),
  TOO_MANY_SESSIONS: spec<{ id: string; max: number }>(
    3017,
    (p) => `Device '${p.id}' already runs ${p.max} sessions; try again later`,
  ),
  SESSION_FAILED: spec(3018, () => 'session ended with an error'),
  NOT_A_PLAN: spec(
    3019,
    () =>
      'The request is not a plan (a JSON object with a "steps" array) and no agent is configured for natural-language requests (start aipd with --llm-base-url and --llm-model)',
  ),
  PLAN_STEP_NOT_EXECUTABLE: spec<{ step: number }>(
    3020,
    (p) =>
      `Plan step ${p.step} is plain language; the plan agent can only run steps of the form {"actions": [...]}`,
  ),
  PLAN_STEP_FAILED: spec<{ step: number; tool: string; error: string }>(
    3021,
    (p) => `Plan step ${p.step} failed: tool '${p.tool}': ${p.error}`,
  ),
  INVALID_PLAN: spec<{ detail: string }>(3022, (p) => `Invalid plan: ${p.detail}`),
  CANCELLED_BY_API: spec(3023, () => 'Task was cancelled by an API request'),
  DELETED_BY_API: spec(3024, () => 'Session deleted over the REST API'),
  // 3060–3079: the LLM agent (src/agents/llm)
  LLM_UNREACHABLE: spec<{ url: string; reason: string }>(
    3060,
    (p) => `The LLM endpoint ${p.url} is unreachable: ${p.reason}`,
  ),
  LLM_HTTP_ERROR: spec<{ status: number; detail: string }>(
    3061,
    (p) => `The LLM endpoint answered HTTP ${p.status}: ${p.detail}`,
  ),
  LLM_TIMEOUT: spec<{ ms: number }>(3062, (p) => `The LLM call timed out after ${p.ms} ms`),
  LLM_BAD_RESPONSE: spec<{ detail: string }>(
    3063,
    (p) => `The LLM endpoint's answer is not a chat completion: ${p.detail}`,
  ),
  LLM_STEP_BUDGET: spec<{ max: number }>(
    3064,
    (p) => `Step budget exceeded: the model took ${p.max} steps without finishing (--llm-max-steps)`,
  ),
  LLM_TOKEN_BUDGET: spec<{ used: number; max: number }>(
    3065,
    (p) => `Token budget exceeded: ${p.used} tokens used of ${p.max} (--llm-token-budget)`,
  ),
  LLM_INVALID_TOOL_ARGS: spec<{ tool: string; detail: string }>(
    3066,
    (p) => `The model returned invalid arguments again after being told: tool '${p.tool}': ${p.detail}`,
  ),
  LLM_LIST_TOOLS_FAILED: spec<{ agent: string; detail: string }>(
    3067,
    (p) => `The device did not list its tools for ${p.agent}: ${p.detail}`,
  ),
  LLM_RETRY_AFTER_TOO_LONG: spec<{ ms: number; max: number }>(
    3068,
    (p) => `The LLM endpoint asked to retry after ${p.ms} ms, longer than --llm-retry-max-ms (${p.max} ms)`,
  ),
  LLM_TOOL_NOT_LISTED: spec<{ tool: string }>(
    3069,
    (p) =>
      `Tool '${p.tool}' is not available: the device did not list it. Nothing was run; call one of the tools offered.`,
  ),
  LLM_TOOL_ARGS_REJECTED: spec<{ tool: string; detail: string }>(
    3070,
    (p) =>
      `Invalid arguments for tool '${p.tool}': ${p.detail}. Nothing was run; call it again with arguments that match its schema.`,
  ),
  LLM_TOO_MANY_TOOL_CALLS: spec<{ calls: number; max: number }>(
    3071,
    (p) =>
      `The model asked for ${p.calls} tool calls in one turn; at most ${p.max} are run (--llm-max-tool-calls)`,
  ),
  LLM_CONVERSATION_TOO_LARGE: spec<{ bytes: number; max: number }>(
    3072,
    (p) =>
      `The conversation grew to ${p.bytes} bytes, over --llm-max-conversation-bytes (${p.max}); the task ends here`,
  ),
  LLM_NO_ANSWER: spec<{ reason: string }>(
    3073,
    (p) => `The model ended its turn without an answer or a tool call: ${p.reason}`,
  ),

  // 4000–4099: device info (UFO texts)
  DEVICE_INFO_ROLE: spec(4000, () => 'DEVICE_INFO_REQUEST is permitted only for constellation clients'),
  DEVICE_INFO_NOT_AUTHORIZED: spec(4001, () => 'Not authorized to request device info for this device'),
  DEVICE_INFO_MISSING: spec<Id>(4002, (p) => `Device ${p.id} not found or no system info available`),

  // 5000–5099: server and transport
  UNKNOWN_MESSAGE_TYPE: spec<{ pyName: string }>(5000, (p) => `Unknown message type: ${p.pyName}`),
  CLIENT_ERROR_ECHO: spec<{ error: string | null }>(5001, (p) => p.error || 'Unknown error'),
  INTERNAL: spec(5002, () => 'Internal server error'),
  SLOW_CONSUMER: spec<{ ms: number }>(5003, (p) => `Outbound buffer stayed over budget for ${p.ms} ms`),

  // 5100–5199: cluster (several aipd nodes on one Redis; src/cluster, src/state/redis-client-directory.ts)
  CLUSTER_NODE_FENCED: spec<{ node: string }>(
    5100,
    (p) => `Node ${p.node} lost its cluster lease and is rejoining; connect again`,
  ),
  CLUSTER_UNAVAILABLE: spec<{ reason: string }>(
    5101,
    (p) => `The cluster directory is unavailable (${p.reason}); retry`,
  ),
  CLUSTER_BUS_UNAVAILABLE: spec<{ node: string }>(
    5102,
    (p) =>
      `Cannot reach node ${p.node} of the cluster now (Redis is unavailable or the node is behind); retry`,
  ),
  CLUSTER_DRAINING: spec<{ node: string }>(
    5103,
    (p) => `Node ${p.node} is draining for a restart and takes no new registrations; connect to another node`,
  ),
  CLUSTER_SESSION_MOVED: spec<{ id: string; node: string }>(
    5104,
    (p) => `Session ${p.id} is no longer run by node ${p.node}: the cluster gave it to another node`,
  ),
  CLUSTER_NODE_DIED: spec<{ node: string; device: string; seconds: number }>(
    5105,
    (p) =>
      `The task was not resumed: node ${p.node} died while running it, and its device ${p.device} did not reconnect within ${p.seconds} s`,
  ),
  CLUSTER_MESSAGES_LOST: spec<{ node: string; missing: number }>(
    5106,
    (p) =>
      `Cancelled: ${p.missing} cluster message(s) from node ${p.node} were trimmed before they were read (that node's inbox overflowed)`,
  ),

  // 6000–6099: HTTP API (UFO `detail` strings)
  HTTP_INVALID_API_KEY: spec(6000, () => 'Invalid API key'),
  HTTP_EMPTY_REQUEST: spec(6001, () => 'Empty task content'),
  HTTP_EMPTY_CLIENT_ID: spec(6002, () => 'Empty client ID'),
  HTTP_INVALID_TASK_NAME: spec(6003, () => INVALID_TASK_NAME_TEXT),
  HTTP_TASK_NAME_TOO_LONG: spec<{ length: number; max: number }>(
    6019,
    (p) => `Invalid task_name: it is ${p.length} characters long; at most ${p.max} are allowed`,
  ),
  HTTP_CLIENT_OFFLINE: spec(6004, () => 'Client not online'),
  HTTP_NOT_FOUND: spec(6005, () => 'Not Found'),
  HTTP_SESSION_NOT_FOUND: spec(6007, () => 'Session not found'),
  HTTP_UNSUPPORTED_MEDIA_TYPE: spec(
    6008,
    () => "Unsupported media type: send the body as 'Content-Type: application/json'",
  ),
  HTTP_URI_TOO_LONG: spec<{ max: number }>(
    6009,
    (p) => `URI too long: the path and query may be at most ${p.max} bytes`,
  ),
  HTTP_HEADERS_TOO_LARGE: spec<{ count: number; bytes: number }>(
    6010,
    (p) => `Request header fields too large: at most ${p.count} fields and ${p.bytes} bytes`,
  ),
  HTTP_BUSY: spec(6011, () => 'Server busy: too many request bodies in flight; retry shortly'),
  SESSION_EXISTS: spec<Id>(6012, (p) => `Session '${p.id}' already exists`),
  SESSION_ILLEGAL_STATUS: spec<{ from: string; to: string }>(
    6013,
    (p) => `Cannot change session status from '${p.from}' to '${p.to}'`,
  ),
  SESSION_FILTER_REQUIRED: spec(
    6014,
    () => 'Bulk delete needs at least one filter (status, agent_id, session_type or a time range)',
  ),
  SESSION_CONFLICT: spec<Id>(
    6015,
    (p) => `Session '${p.id}' kept changing while it was being updated; retry`,
  ),
  HTTP_BAD_CURSOR: spec(6016, () => 'Invalid cursor'),
  SESSION_ID_IN_USE: spec<{ sid: string }>(
    6017,
    (p) => `Session ID '${p.sid}' is held by another session that has not ended`,
  ),
  SESSION_LIVE_STATUS: spec<{ sid: string; status: string; allowed: string }>(
    6018,
    (p) =>
      `Session '${p.sid}' is running: its status is the server's, and a PATCH may only end it ('${p.allowed}'), not set it to '${p.status}'`,
  ),
  // 6100–6199: remote execution sessions (typed sessions, execute, files, services, streams)
  REMOTE_UNKNOWN_DEVICE: spec<Id>(6100, (p) => `Device '${p.id}' is not known (it has never registered)`),
  REMOTE_DEVICE_OFFLINE: spec<Id>(6101, (p) => `Device '${p.id}' is not connected`),
  REMOTE_NOT_A_DEVICE: spec<Id>(
    6102,
    (p) => `Client '${p.id}' is registered as a constellation, not a device`,
  ),
  REMOTE_BAD_PARAMETERS: spec<{ type: string; detail: string }>(
    6103,
    (p) => `Invalid parameters for session type '${p.type}': ${p.detail}`,
  ),
  REMOTE_NOT_LIVE: spec<{ sid: string; status: string }>(
    6104,
    (p) => `Session '${p.sid}' is ${p.status}, not active: it cannot run anything`,
  ),
  REMOTE_UNSUPPORTED: spec<{ sid: string; type: string; op: string }>(
    6105,
    (p) => `Session '${p.sid}' of type '${p.type}' does not support ${p.op}`,
  ),
  REMOTE_BUSY: spec<{ sid: string }>(
    6106,
    (p) => `Session '${p.sid}' is already running an execute call; interrupt it or wait`,
  ),
  REMOTE_DEVICE_CANNOT: spec<{ id: string; what: string }>(
    6107,
    (p) => `Device '${p.id}' does not offer ${p.what} (start aipd device with the matching flag)`,
  ),
  STREAM_TOKEN_INVALID: spec(
    6110,
    () => 'Stream token is invalid, expired, already used, or for another session',
  ),
  STREAM_TOKEN_MISSING: spec<{ ms: number }>(
    6111,
    (p) => `No stream token arrived within ${p.ms} ms: send {"token": "..."} as the first text frame`,
  ),
  STREAM_BAD_MESSAGE: spec<{ detail: string }>(6112, (p) => `Invalid stream message: ${p.detail}`),
  STREAM_INPUT_OVER_BUDGET: spec<{ max: number }>(
    6113,
    (p) => `Stream input exceeded ${p.max} bytes waiting for the device; send less at a time`,
  ),
  SERVICE_NOT_FOUND: spec<{ port: number }>(6120, (p) => `No service listener on local port ${p.port}`),
  SERVICE_TOO_MANY: spec<{ max: number }>(
    6121,
    (p) => `A session may have at most ${p.max} service listeners`,
  ),
  MULTIPART_INVALID: spec<{ detail: string }>(6130, (p) => `Invalid multipart/form-data body: ${p.detail}`),
  // 6140–6159: the SSM-compatible data channel (`/sessions/{id}/ssm`, docs/ssm.md); sent as channel_closed Output
  SSM_HANDSHAKE_TIMEOUT: spec<{ ms: number }>(
    6140,
    (p) => `The client sent no handshake response within ${p.ms} ms`,
  ),
  SSM_HANDSHAKE_REFUSED: spec<{ reason: string }>(6141, (p) => `The handshake failed: ${p.reason}`),
  SSM_CLIENT_UNRESPONSIVE: spec<{ seq: number; attempts: number }>(
    6142,
    (p) => `The client did not acknowledge output message ${p.seq} after ${p.attempts} sends`,
  ),
  SSM_CLIENT_BUSY: spec<{ sid: string }>(
    6143,
    (p) =>
      `Session '${p.sid}' already has a data-channel client; reconnect with the same client or start a new session`,
  ),
  SSM_PORT_CONNECT_FAILED: spec<{ port: number; reason: string }>(
    6144,
    (p) => `Connection to port ${p.port} on the device failed: ${p.reason}`,
  ),
  SSM_BAD_SMUX: spec<{ detail: string }>(6145, (p) => `Invalid smux stream from the client: ${p.detail}`),
  SSM_FIRST_FRAME: spec(
    6146,
    () => 'The first frame must be the OpenDataChannelInput JSON with the session token (TokenValue)',
  ),
  SSM_RESUME_EXPIRED: spec<{ ms: number }>(
    6147,
    (p) => `The data-channel client did not come back within ${p.ms} ms`,
  ),
  SSM_TERMINATED: spec(6148, () => 'The client terminated the session'),
  SSM_CLIENT_REPLACED: spec<{ sid: string }>(
    6149,
    (p) => `Another session-manager-plugin connected to port session '${p.sid}' and took it over`,
  ),

  // 7000–7099: data channels (protocol/channel.ts) and AIP binary/file transfer (ufo-aip.md §10)
  CHANNEL_BAD_FRAME: spec<{ detail: string }>(7000, (p) => `Invalid channel frame: ${p.detail}`),
  CHANNEL_UNKNOWN: spec<{ channel: number }>(7001, (p) => `Unknown channel ${p.channel} on this connection`),
  CHANNEL_NOT_AUTHORIZED: spec<{ sid: string }>(
    7002,
    (p) => `Not a party of session '${p.sid}'; channels belong to the session's requester and executor`,
  ),
  CHANNEL_SESSION_NOT_LIVE: spec<{ sid: string }>(7003, (p) => `Session '${p.sid}' is not live`),
  CHANNEL_PEER_NOT_CONNECTED: spec<Id>(
    7004,
    (p) => `The other party '${p.id}' of the session is not connected`,
  ),
  CHANNEL_WINDOW_EXCEEDED: spec<{ channel: number; inFlight: number; window: number }>(
    7005,
    (p) =>
      `Channel ${p.channel}: ${p.inFlight} bytes in flight exceed the advertised window of ${p.window} bytes`,
  ),
  CHANNEL_PROTOCOL: spec<{ channel: number; detail: string }>(
    7006,
    (p) => `Channel ${p.channel}: protocol violation: ${p.detail}`,
  ),
  CHANNEL_ID_IN_USE: spec<{ channel: number }>(
    7007,
    (p) => `Channel id ${p.channel} is already in use or has the wrong parity`,
  ),
  CHANNEL_TOO_MANY: spec<{ max: number }>(
    7008,
    (p) => `Too many open channels on this connection (limit ${p.max})`,
  ),
  CHANNEL_PEER_GONE: spec(7009, () => "The channel's peer disconnected"),
  CHANNEL_SESSION_ENDED: spec<{ sid: string }>(7010, (p) => `Session '${p.sid}' ended`),
  CHANNEL_KIND_UNSUPPORTED: spec<{ kind: string }>(
    7011,
    (p) => `Channel kind '${p.kind}' is not supported here`,
  ),
  CHANNEL_REJECTED: spec<{ reason: string }>(7012, (p) => `Channel rejected: ${p.reason}`),
  CHANNEL_CANCELLED: spec(7013, () => 'Channel was cancelled'),
  CHANNEL_SELF: spec(
    7014,
    () => 'The requester and the executor of this session are the same connection; there is no peer',
  ),
  CHANNEL_BAD_PARAMS: spec<{ detail: string }>(7015, (p) => `Invalid channel parameters: ${p.detail}`),
  CHANNEL_OPEN_TIMEOUT: spec<{ ms: number }>(7016, (p) => `Channel open was not answered within ${p.ms} ms`),
  CHANNEL_SESSION_TOO_MANY: spec<{ sid: string; max: number }>(
    7017,
    (p) => `Too many open channels in session '${p.sid}' (limit ${p.max}, --max-channels-per-session)`,
  ),
  FILE_PATH_ESCAPE: spec<{ path: string }>(7020, (p) => `Path '${p.path}' escapes the file root`),
  FILE_NOT_FOUND: spec<{ path: string }>(7021, (p) => `File '${p.path}' not found`),
  FILE_CHECKSUM_MISMATCH: spec<{ expected: string; got: string }>(
    7022,
    (p) => `SHA-256 mismatch: expected ${p.expected}, got ${p.got}`,
  ),
  FILE_BAD_OFFSET: spec<{ offset: number; size: number }>(
    7023,
    (p) => `Offset ${p.offset} is beyond the ${p.size} bytes available`,
  ),
  FILE_IO: spec<{ detail: string }>(7024, (p) => `File I/O failed: ${p.detail}`),
  FILE_SIZE_MISMATCH: spec<{ expected: number; got: number }>(
    7025,
    (p) => `File size mismatch: expected ${p.expected} bytes, got ${p.got} bytes`,
  ),
  PORT_CONNECT_FAILED: spec<{ host: string; port: number; reason: string }>(
    7030,
    (p) => `Could not connect to ${p.host}:${p.port}: ${p.reason}`,
  ),
  PORT_NOT_ALLOWED: spec<{ host: string; port: number }>(
    7031,
    (p) => `Forwarding to ${p.host}:${p.port} is not allowed`,
  ),
  STREAM_SPAWN_FAILED: spec<{ command: string; reason: string }>(
    7040,
    (p) => `Could not start '${p.command}': ${p.reason}`,
  ),
  STREAM_EXEC_DISABLED: spec(
    7041,
    () => 'Running commands is disabled on this device (start it with --allow-exec)',
  ),
  STDIO_BAD_RECORD: spec<{ detail: string }>(7042, (p) => `Invalid stdio record: ${p.detail}`),
  FILE_NOT_A_DIRECTORY: spec<{ path: string }>(7026, (p) => `'${p.path}' is not a directory`),
  FILE_NOT_A_FILE: spec<{ path: string; kind: string }>(
    7027,
    (p) => `'${p.path}' is a ${p.kind}, not a file`,
  ),
  TRANSFER_SIZE_MISMATCH: spec<{ expected: number; got: number }>(
    7050,
    (p) => `Size mismatch: expected ${p.expected} bytes, got ${p.got} bytes`,
  ),
  TRANSFER_CHECKSUM_MISMATCH: spec<{ expected: string; got: string }>(
    7051,
    (p) => `Checksum mismatch: expected ${p.expected}, got ${p.got}`,
  ),
  TRANSFER_EXPECTED_BINARY: spec(7052, () => 'Expected binary WebSocket frame, but received text frame'),
  TRANSFER_UNEXPECTED_BINARY: spec(7053, () => 'Binary frame without a preceding binary_data metadata frame'),
  TRANSFER_BAD_METADATA: spec<{ detail: string }>(7054, (p) => `Invalid transfer metadata: ${p.detail}`),
  TRANSFER_WRONG_TYPE: spec<{ expected: string; got: string }>(
    7055,
    (p) => `Expected message type '${p.expected}', got '${p.got}'`,
  ),
  TRANSFER_NO_SESSION: spec(
    7056,
    () => 'Binary and file transfers need the session_id of a live session this client takes part in',
  ),
} as const;

export type ErrorName = keyof typeof Errors;
type ParamsOf<N extends ErrorName> = (typeof Errors)[N] extends Spec<infer P> ? P : never;

/**
 * `Error` with V8's `stackTraceLimit` (Node, Deno, Chromium), which caps the frames a new error captures. Other
 * engines ignore the property, so setting it is harmless everywhere; the type is declared here because protocol/
 * is type-checked without Node's types.
 */
const V8Error = Error as ErrorConstructor & { stackTraceLimit?: number };

/**
 * A typed aipd error: a stable numeric `code`, its catalogue `name`, and the wire text as `message`.
 * It is a value sent to peers, not a bug report, so no stack trace is captured: that capture was most of its
 * cost, and a flood of bad frames would otherwise cost far more per frame than valid traffic. `stack` holds
 * just the name and message.
 */
export class AipError extends Error {
  override readonly name = 'AipError';
  constructor(
    readonly kind: ErrorName,
    readonly code: number,
    message: string,
    readonly path?: readonly (string | number)[],
  ) {
    const limit = V8Error.stackTraceLimit;
    V8Error.stackTraceLimit = 0;
    try {
      super(message);
    } finally {
      V8Error.stackTraceLimit = limit;
    }
  }
}

/** Builds the catalogue error `name` with its parameters. */
export function aipError<N extends ErrorName>(
  name: N,
  ...args: ParamsOf<N> extends void ? [] : [ParamsOf<N>]
): AipError {
  const s = Errors[name] as Spec<unknown>;
  return new AipError(name, s.code, s.text(args[0]));
}

/** Like `aipError`, but records the path of the offending field. */
export function aipErrorAt<N extends ErrorName>(
  name: N,
  path: readonly (string | number)[],
  ...args: ParamsOf<N> extends void ? [] : [ParamsOf<N>]
): AipError {
  const s = Errors[name] as Spec<unknown>;
  return new AipError(name, s.code, s.text(args[0]), path);
}
