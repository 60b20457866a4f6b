/**
 * Server configuration: defaults < config file (--config FILE, JSON) < environment (AIPD_*) < flags.
 * Everything is validated with zod; a bad value becomes a ConfigError that names the flag or key.
 * Every timeout has a name and a knob here.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { PLAN_ERROR_MAX_BYTES, PLAN_RESULT_MAX_BYTES } from './agents/plan-agent.js';
import { CLUSTER_CONFIG, CLUSTER_FLAGS } from './config-cluster.js';
import { LLM_CONFIG, LLM_FLAGS } from './config-llm.js';
import { SSM_CONFIG, SSM_FLAGS } from './config-ssm.js';
import { DEFAULT_EVENT_PAGE_MAX_BYTES } from './records/session-service.js';
import { DEFAULT_GROUP_COMMIT_MS } from './state/group-commit.js';
import {
  DEFAULT_SQLITE_CHECKPOINT_MS,
  DEFAULT_SQLITE_CHECKPOINT_FOLLOW_UP_MS,
  DEFAULT_SQLITE_CHECKPOINT_FOLLOW_UPS,
  DEFAULT_SQLITE_CHECKPOINT_NICE,
  DEFAULT_SQLITE_WAL_MAX_BYTES,
} from './state/sqlite-checkpointer.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const port = z.number().int().min(0).max(65535);
const positiveMs = z.number().int().positive();

export const ServerConfig = z.object({
  port: port.default(5000),
  host: z.string().min(1).default('127.0.0.1'),
  /** The API key: the `token` query parameter on /ws and the X-API-Key header on /api. Generated when absent. */
  apiKey: z.string().min(1).optional(),
  /** Default platform for sessions whose device did not say (UFO's --platform). */
  platform: z.enum(['windows', 'linux', 'mobile']).default('windows'),
  logLevel: z.enum(LOG_LEVELS).default('info'),
  /** `json` (one pino JSON object a line, the default) or `pretty` (pino-pretty: colourised, for a terminal). */
  logFormat: z.enum(['json', 'pretty']).default('json'),
  /** `GET /metrics` (Prometheus): `on` (the default) or `off` (the route answers 404 and nothing is collected). */
  metrics: z.enum(['on', 'off']).default('on'),
  /** A token that reads /metrics (as `Authorization: Bearer TOKEN`) besides the API key, for a Prometheus server. */
  metricsToken: z.string().min(16, { error: 'must be at least 16 characters' }).optional(),
  /** How long /readyz waits for the store (and Redis) to answer before it reports them unreachable. */
  readyTimeoutMs: positiveMs.default(2_000),
  /** Accepted for UFO CLI parity; it has no effect, as in UFO. */
  local: z.boolean().default(false),
  /** Time a new connection has to send `register`. */
  registrationTimeoutMs: positiveMs.default(30_000),
  /** Cap on connections that have not registered yet. */
  maxUnregistered: z.number().int().positive().default(10_000),
  /**
   * Largest `metadata` (system_info included) a client may register with, as JSON: it is kept, in the directory,
   * for as long as the client stays connected; a larger one is refused.
   */
  maxRegistrationMetadataBytes: z
    .number()
    .int()
    .min(1024)
    .default(64 * 1024),
  /** Time to wait for `command_results` before answering the agent with synthetic failures (UFO: 6000 s). */
  commandTimeoutMs: positiveMs.default(600_000),
  /** Sessions one device may execute at once; further tasks get an error. */
  maxSessionsPerDevice: z.number().int().positive().default(64),
  /** Largest inbound frame (UFO: 100 MiB). */
  maxPayloadBytes: z
    .number()
    .int()
    .positive()
    .default(100 * 1024 * 1024),
  /**
   * The socket layer accepts frames up to this many times --max-payload-bytes, so that aipd's own check can answer
   * a frame over the limit with an error and close 1009. uWS drops a frame over its own limit unread, with no close
   * frame (the client sees 1006).
   */
  socketPayloadFactor: z.number().int().min(1).max(8).default(2),
  /** Deepest nesting accepted in a message. */
  maxDepth: z.number().int().positive().default(128),
  /** Most objects and arrays in one message; checked on the bytes before parsing (a flood of `[]` costs memory). */
  maxContainers: z.number().int().positive().default(100_000),
  /** Outbound bytes a connection may have queued before it counts as a slow consumer. */
  outboundBudgetBytes: z
    .number()
    .int()
    .positive()
    .default(16 * 1024 * 1024),
  /** How long a connection may stay over its outbound budget before it is closed (close code 4008). */
  slowConsumerTimeoutMs: positiveMs.default(10_000),
  /** WebSocket idle timeout in seconds; uWS pings automatically well before it. 0 disables. */
  idleTimeoutSec: z.number().int().min(0).max(960).default(60),
  /** How long a data-channel OPEN may wait for the other party's answer. */
  channelOpenTimeoutMs: positiveMs.default(30_000),
  /** Data channels one connection (a device's socket) may take part in at once. */
  maxChannelsPerConnection: z.number().int().min(1).max(65_536).default(64),
  /** Data channels one session may have open at once (so one cannot take a device's connection from the rest). */
  maxChannelsPerSession: z.number().int().min(1).max(65_536).default(32),
  /** With `--store memory`: bytes (by a content estimate) of ended sessions kept; the oldest are forgotten. */
  memoryStoreEndedBytes: z
    .number()
    .int()
    .positive()
    .default(64 * 1024 * 1024),
  /** Dispatch ids (from /api/dispatch) remembered as aliases of their task names. */
  dispatchAliasCacheSize: z.number().int().positive().default(10_000),
  /** In a cluster: how long a dispatch id stays resolvable on every node (kept in Redis). */
  dispatchAliasTtlMs: positiveMs.default(24 * 60 * 60 * 1000),
  /** How long a cancelled agent may take to report its partial result before the session ends anyway. */
  cancelGraceMs: positiveMs.default(1_000),
  /** Largest HTTP request body; more gets 413. */
  maxHttpBodyBytes: z
    .number()
    .int()
    .positive()
    .default(4 * 1024 * 1024),
  /** HTTP body bytes being read across all connections at once; a request over it gets 503. */
  maxHttpBodyBytesInFlight: z
    .number()
    .int()
    .positive()
    .default(64 * 1024 * 1024),
  /** Longest HTTP path plus query; longer gets 414. (uWS closes without an answer past about 100 KiB of head.) */
  maxUrlBytes: z
    .number()
    .int()
    .positive()
    .default(8 * 1024),
  /** Most HTTP header fields; more gets 431. (uWS closes without an answer past about 47 fields.) */
  maxHeaderCount: z.number().int().positive().max(45).default(40),
  /** Most bytes of HTTP header names and values together; more gets 431. */
  maxHeaderBytes: z
    .number()
    .int()
    .positive()
    .default(16 * 1024),
  /** Bytes the socket layer may hold for one connection before frames wait in aipd's own outbound queue. */
  highWaterMarkBytes: z
    .number()
    .int()
    .positive()
    .default(1024 * 1024),
  /** A connection whose pending outbound bytes exceed this many times its budget is closed at once. */
  slowConsumerHardCap: z.number().int().min(1).default(4),
  /** Bytes a client may send after `register` before its registration is confirmed (kept and replayed). */
  registeringBufferBytes: z
    .number()
    .int()
    .positive()
    .default(1024 * 1024),
  /**
   * Where session records live: `sqlite` (a file under --data-dir, the default), a `postgres://…` URL, or `memory`
   * (tests and benchmarks: nothing survives a restart).
   */
  store: z
    .string()
    .refine((v) => v === 'sqlite' || v === 'memory' || /^postgres(ql)?:\/\//.test(v), {
      error: "must be 'sqlite', 'memory' or a postgres:// URL",
    })
    .default('sqlite'),
  /** Folder for the SQLite database and the node id. Created when missing. */
  dataDir: z.string().min(1).default('./aipd-data'),
  /** This node's id (crash recovery marks only its own sessions); by default generated once and kept in --data-dir. */
  nodeId: z.string().min(1).max(128).optional(),
  /** Redis URL: when set, session lifecycle events are published on the channel `events:session`. */
  redis: z
    .string()
    .regex(/^rediss?:\/\//, { error: 'must be a redis:// URL' })
    .optional(),
  // Cluster membership and its bus: the knobs live in config-cluster.ts.
  ...CLUSTER_CONFIG,
  /** Resume crashed AIP tasks when their device registers again (`auto`), or end them failed at once (`never`). */
  resume: z.enum(['auto', 'never']).default('auto'),
  /** How long after a restart a crashed task may wait for its device before it ends failed. */
  resumeGraceMs: positiveMs.default(30_000),
  /** Events kept in each session's log; the oldest go first (a resumed task replays trimmed steps as done). */
  eventLogMax: z.number().int().positive().default(10_000),
  /**
   * Estimated JSON bytes of step results a plan task's outcome (`task_end.result`) keeps whole; the outcome is held
   * in memory until the task ends. Steps past it are listed with `results_omitted` (their results stay whole in the
   * session's events).
   */
  planResultMaxBytes: z.number().int().positive().default(PLAN_RESULT_MAX_BYTES),
  /** UTF-8 bytes of a device's error text a failed plan step's PLAN_STEP_FAILED quotes; the cut is said. */
  planErrorMaxBytes: z.number().int().min(256).default(PLAN_ERROR_MAX_BYTES),
  /** Larger event payloads are replaced by a note of their size. */
  eventDataMaxBytes: z
    .number()
    .int()
    .positive()
    .default(16 * 1024),
  /**
   * Event data (JSON characters) one page of a log read over the API holds at most: `GET …/events` pages, SSE
   * replay pages and `/logs` reads stop before the event past it (the first of a page is always in).
   */
  eventPageMaxBytes: z.number().int().min(1024).default(DEFAULT_EVENT_PAGE_MAX_BYTES),
  /** Store writes that arrive within this many ms are committed together (0: at the end of the current tick). */
  groupCommitMs: z.number().int().min(0).max(1000).default(DEFAULT_GROUP_COMMIT_MS),
  /** SQLite: WAL checkpoints in a worker thread at this interval (0: SQLite's own, on the event loop). */
  sqliteCheckpointMs: z.number().int().min(0).max(60_000).default(DEFAULT_SQLITE_CHECKPOINT_MS),
  /** SQLite: added to the process's nice value for the checkpoint thread on Linux, up to 19 (0: the same). */
  sqliteCheckpointNice: z.number().int().min(0).max(19).default(DEFAULT_SQLITE_CHECKPOINT_NICE),
  /** SQLite: a thread checkpoint longer than this is followed by another before the event loop finishes it. */
  sqliteCheckpointFollowUpMs: z
    .number()
    .int()
    .min(0)
    .max(60_000)
    .default(DEFAULT_SQLITE_CHECKPOINT_FOLLOW_UP_MS),
  /** SQLite: follow-up checkpoints in a row at most (0: the event loop finishes at once). */
  sqliteCheckpointFollowUps: z.number().int().min(0).max(100).default(DEFAULT_SQLITE_CHECKPOINT_FOLLOW_UPS),
  /** SQLite: WAL size past which commits checkpoint on the event loop (the checkpoint thread lagging); ≥ 32 MiB. */
  sqliteWalMaxBytes: z
    .number()
    .int()
    .min(32 * 1024 * 1024)
    .default(DEFAULT_SQLITE_WAL_MAX_BYTES),
  /** Time given to sockets to flush their last frames on shutdown. */
  shutdownGraceMs: positiveMs.default(2_000),
  // Remote execution sessions (src/remote/).
  /** A device-bound session with no activity for this long ends `cancelled` (reason idle timeout). */
  remoteIdleTimeoutMs: positiveMs.default(30 * 60_000),
  /** How long a stream token (`token_value`) may wait to be used. */
  streamTokenTtlMs: positiveMs.default(60_000),
  /** How long a new stream WebSocket has to send its token. */
  streamTokenWaitMs: positiveMs.default(10_000),
  /** Longest an `execute` may run (a request may ask for less with `timeout_ms`); then it ends `timeout`. */
  executeTimeoutMs: positiveMs.default(10 * 60_000),
  /** stdout and stderr bytes an `execute` answer keeps (each); past it the output is cut and marked truncated. */
  executeOutputMaxBytes: z
    .number()
    .int()
    .positive()
    .default(8 * 1024 * 1024),
  /**
   * Stream and SSM sockets open and waiting for their token (unauthenticated) at once; more upgrades get 503. Each
   * may hold one partial frame of up to its path's socket limit, so this bounds what clients with no credentials can
   * make the server hold.
   */
  maxStreamTokenWaits: z.number().int().positive().max(100_000).default(128),
  /** stdin bytes a stream WebSocket may have waiting for the device's credit; more closes it (4013). */
  streamInputMaxBytes: z
    .number()
    .int()
    .positive()
    .default(1024 * 1024),
  /** Address service listeners (`POST /sessions/{id}/services`) bind to. */
  serviceBindHost: z.string().min(1).default('127.0.0.1'),
  /** Service listeners one session may have open. */
  maxServicesPerSession: z.number().int().positive().default(16),
  /** Files one upload request may carry. */
  uploadMaxFiles: z.number().int().positive().default(100),
  /** Base of the `stream_url`s handed out (e.g. `wss://aipd.example.com`); by default the request's Host. */
  publicUrl: z
    .string()
    .regex(/^(https?|wss?):\/\/[^/]+$/, { error: 'must be scheme://host[:port] with no path' })
    .optional(),
  // The `llm` agent's endpoint and limits (src/agents/llm/): the knobs live in config-llm.ts.
  ...LLM_CONFIG,
  // The SSM-compatible stream endpoint (src/ssm/): its knobs live in config-ssm.ts.
  ...SSM_CONFIG,
});
export type ServerConfig = z.infer<typeof ServerConfig> & { apiKey: string };
export type ServerConfigInput = z.input<typeof ServerConfig>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Flag name ↔ config key. */
const FLAGS = {
  port: { key: 'port', type: 'int' },
  host: { key: 'host', type: 'string' },
  'api-key': { key: 'apiKey', type: 'string' },
  platform: { key: 'platform', type: 'string' },
  'log-level': { key: 'logLevel', type: 'string' },
  'log-format': { key: 'logFormat', type: 'string' },
  metrics: { key: 'metrics', type: 'string' },
  'metrics-token': { key: 'metricsToken', type: 'string' },
  'ready-timeout-ms': { key: 'readyTimeoutMs', type: 'int' },
  local: { key: 'local', type: 'boolean' },
  'registration-timeout-ms': { key: 'registrationTimeoutMs', type: 'int' },
  'max-unregistered': { key: 'maxUnregistered', type: 'int' },
  'max-registration-metadata-bytes': { key: 'maxRegistrationMetadataBytes', type: 'int' },
  'command-timeout-ms': { key: 'commandTimeoutMs', type: 'int' },
  'max-sessions-per-device': { key: 'maxSessionsPerDevice', type: 'int' },
  'max-payload-bytes': { key: 'maxPayloadBytes', type: 'int' },
  'outbound-budget-bytes': { key: 'outboundBudgetBytes', type: 'int' },
  'slow-consumer-timeout-ms': { key: 'slowConsumerTimeoutMs', type: 'int' },
  'idle-timeout-sec': { key: 'idleTimeoutSec', type: 'int' },
  'channel-open-timeout-ms': { key: 'channelOpenTimeoutMs', type: 'int' },
  'max-channels-per-connection': { key: 'maxChannelsPerConnection', type: 'int' },
  'max-channels-per-session': { key: 'maxChannelsPerSession', type: 'int' },
  'max-depth': { key: 'maxDepth', type: 'int' },
  'max-containers': { key: 'maxContainers', type: 'int' },
  'socket-payload-factor': { key: 'socketPayloadFactor', type: 'int' },
  'memory-store-ended-bytes': { key: 'memoryStoreEndedBytes', type: 'int' },
  'dispatch-alias-cache-size': { key: 'dispatchAliasCacheSize', type: 'int' },
  'dispatch-alias-ttl-ms': { key: 'dispatchAliasTtlMs', type: 'int' },
  'cancel-grace-ms': { key: 'cancelGraceMs', type: 'int' },
  'max-http-body-bytes': { key: 'maxHttpBodyBytes', type: 'int' },
  'max-http-body-bytes-in-flight': { key: 'maxHttpBodyBytesInFlight', type: 'int' },
  'max-url-bytes': { key: 'maxUrlBytes', type: 'int' },
  'max-header-count': { key: 'maxHeaderCount', type: 'int' },
  'max-header-bytes': { key: 'maxHeaderBytes', type: 'int' },
  'high-water-mark-bytes': { key: 'highWaterMarkBytes', type: 'int' },
  'slow-consumer-hard-cap': { key: 'slowConsumerHardCap', type: 'int' },
  'registering-buffer-bytes': { key: 'registeringBufferBytes', type: 'int' },
  'shutdown-grace-ms': { key: 'shutdownGraceMs', type: 'int' },
  store: { key: 'store', type: 'string' },
  'data-dir': { key: 'dataDir', type: 'string' },
  'node-id': { key: 'nodeId', type: 'string' },
  redis: { key: 'redis', type: 'string' },
  ...CLUSTER_FLAGS,
  resume: { key: 'resume', type: 'string' },
  'resume-grace-ms': { key: 'resumeGraceMs', type: 'int' },
  'event-log-max': { key: 'eventLogMax', type: 'int' },
  'event-data-max-bytes': { key: 'eventDataMaxBytes', type: 'int' },
  'event-page-max-bytes': { key: 'eventPageMaxBytes', type: 'int' },
  'plan-result-max-bytes': { key: 'planResultMaxBytes', type: 'int' },
  'plan-error-max-bytes': { key: 'planErrorMaxBytes', type: 'int' },
  'group-commit-ms': { key: 'groupCommitMs', type: 'int' },
  'sqlite-checkpoint-ms': { key: 'sqliteCheckpointMs', type: 'int' },
  'sqlite-checkpoint-nice': { key: 'sqliteCheckpointNice', type: 'int' },
  'sqlite-checkpoint-follow-up-ms': { key: 'sqliteCheckpointFollowUpMs', type: 'int' },
  'sqlite-checkpoint-follow-ups': { key: 'sqliteCheckpointFollowUps', type: 'int' },
  'sqlite-wal-max-bytes': { key: 'sqliteWalMaxBytes', type: 'int' },
  'remote-idle-timeout-ms': { key: 'remoteIdleTimeoutMs', type: 'int' },
  'stream-token-ttl-ms': { key: 'streamTokenTtlMs', type: 'int' },
  'stream-token-wait-ms': { key: 'streamTokenWaitMs', type: 'int' },
  'max-stream-token-waits': { key: 'maxStreamTokenWaits', type: 'int' },
  'execute-timeout-ms': { key: 'executeTimeoutMs', type: 'int' },
  'execute-output-max-bytes': { key: 'executeOutputMaxBytes', type: 'int' },
  'stream-input-max-bytes': { key: 'streamInputMaxBytes', type: 'int' },
  'service-bind-host': { key: 'serviceBindHost', type: 'string' },
  'max-services-per-session': { key: 'maxServicesPerSession', type: 'int' },
  'upload-max-files': { key: 'uploadMaxFiles', type: 'int' },
  'public-url': { key: 'publicUrl', type: 'string' },
  ...LLM_FLAGS,
  ...SSM_FLAGS,
} as const satisfies Record<
  string,
  { key: keyof ServerConfigInput; type: 'int' | 'number' | 'string' | 'boolean' }
>;

type FlagName = keyof typeof FLAGS;

function convert(
  name: string,
  type: 'int' | 'number' | 'string' | 'boolean',
  raw: string | boolean,
): unknown {
  if (type === 'boolean') return raw === true || raw === 'true' || raw === '1';
  if (type === 'number') {
    if (typeof raw !== 'string' || !/^-?(\d+\.?\d*|\.\d+)$/.test(raw.trim()))
      throw new ConfigError(`${name}: expected a number, got '${String(raw)}'`);
    return Number(raw);
  }
  if (type === 'int') {
    if (typeof raw !== 'string' || !/^-?\d+$/.test(raw.trim()))
      throw new ConfigError(`${name}: expected an integer, got '${String(raw)}'`);
    return Number(raw);
  }
  return raw;
}

/** Parses `aipd serve` arguments plus environment into a validated config. Throws ConfigError. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const options: Record<string, { type: 'string' | 'boolean' }> = { config: { type: 'string' } };
  for (const [flag, spec] of Object.entries(FLAGS))
    options[flag] = { type: spec.type === 'boolean' ? 'boolean' : 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
  } catch (err) {
    throw new ConfigError((err as Error).message.split('\n')[0] ?? 'invalid arguments');
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;

  let input: Record<string, unknown> = {};
  const file = values.config ?? env.AIPD_CONFIG;
  if (typeof file === 'string') input = readConfigFile(file);

  for (const [flag, spec] of Object.entries(FLAGS) as [FlagName, (typeof FLAGS)[FlagName]][]) {
    const envName = `AIPD_${flag.toUpperCase().replace(/-/g, '_')}`;
    const fromEnv = env[envName];
    if (fromEnv !== undefined && fromEnv !== '') input[spec.key] = convert(envName, spec.type, fromEnv);
    const fromFlag = values[flag];
    if (fromFlag !== undefined) input[spec.key] = convert(`--${flag}`, spec.type, fromFlag);
  }
  return finalizeConfig(input);
}

/** Validates a config object (from code or tests); generates the API key when absent. */
export function finalizeConfig(input: ServerConfigInput | Record<string, unknown>): ServerConfig {
  const r = ServerConfig.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const key = issue.path.join('.');
    const flag = Object.entries(FLAGS).find(([, s]) => s.key === key)?.[0];
    throw new ConfigError(`${flag ? `--${flag}` : key}: ${issue.message}`);
  }
  if ((r.data.llmBaseUrl === undefined) !== (r.data.llmModel === undefined))
    throw new ConfigError(
      r.data.llmBaseUrl === undefined
        ? '--llm-model: needs --llm-base-url (the OpenAI-compatible endpoint)'
        : '--llm-base-url: needs --llm-model (the model to ask)',
    );
  if (r.data.cluster !== undefined && !/^postgres(ql)?:\/\//.test(r.data.store))
    throw new ConfigError(
      `--cluster: needs a shared session store (--store postgres://…); '${r.data.store}' is this node's alone`,
    );
  if (r.data.clusterHeartbeatMs * 2 > r.data.clusterLeaseMs)
    throw new ConfigError(
      `--cluster-heartbeat-ms: must be at most half of --cluster-lease-ms (${r.data.clusterLeaseMs})`,
    );
  return { ...r.data, apiKey: r.data.apiKey ?? generateApiKey() };
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `--config: cannot read '${path}': ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`--config: '${path}' is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new ConfigError(`--config: '${path}' must hold a JSON object`);
  const known = new Set(Object.keys(ServerConfig.shape));
  for (const k of Object.keys(value))
    if (!known.has(k)) throw new ConfigError(`--config: unknown key '${k}' in '${path}'`);
  return value as Record<string, unknown>;
}

/** 32 random bytes, base64url: 43 characters, like Python's secrets.token_urlsafe(32). */
export function generateApiKey(): string {
  return randomBytes(32).toString('base64url');
}
