/**
 * The AIP envelopes, declared once (ufo-aip.md §3.2–§3.4).
 *
 * Parsing reproduces pydantic v2 as UFO's server runs it (§3.6):
 * - unknown keys are ignored (zod's default `strip`);
 * - no coercion: a number where a string is expected is an error;
 * - an absent optional key becomes `null`, but an explicit `null` for `client_type` is an error;
 * - `metadata` and `parameters` must be JSON objects when present.
 *
 * Key order in each `z.object` is the wire's serialisation order; the JSON codec relies on it for
 * byte parity with UFO's `model_dump_json()`.
 */
import { z } from 'zod';
import {
  ClientMessageType,
  ClientType,
  ResultStatus,
  ServerMessageType,
  TaskStatus,
  ToolType,
} from './enums.js';

const optString = z.string().nullable().default(null);

/** Longest id the protocol accepts (client, target, session, request and response ids). */
export const MAX_ID_LENGTH = 256;
/** An optional id: at most MAX_ID_LENGTH characters, with a message naming the limit. */
const optId = z
  .string()
  .max(MAX_ID_LENGTH, { error: `must be at most ${MAX_ID_LENGTH} characters` })
  .nullable()
  .default(null);
const jsonObject = z.record(z.string(), z.unknown());
const optObject = jsonObject.nullable().default(null);

/** A tool call the server asks the executor to run. */
export const Command = z.object({
  tool_name: z.string(),
  parameters: optObject,
  tool_type: ToolType,
  call_id: optString,
});
export type Command = z.infer<typeof Command>;
export type CommandInput = z.input<typeof Command>;

/** The executor's answer to one Command, in command order. */
export const Result = z.object({
  status: ResultStatus,
  error: optString,
  result: z.unknown().default(null),
  namespace: optString,
  call_id: optString,
});
export type Result = z.infer<typeof Result>;
export type ResultInput = z.input<typeof Result>;

/** C→S envelope. `type` and `status` are required; `client_type` defaults to `device` only when absent. */
export const ClientMessage = z.object({
  type: ClientMessageType,
  status: TaskStatus,
  client_type: ClientType.default('device'),
  session_id: optId,
  task_name: optString,
  client_id: optId,
  target_id: optId,
  request: optString,
  action_results: z.array(Result).nullable().default(null),
  timestamp: optString,
  request_id: optId,
  prev_response_id: optId,
  error: optString,
  metadata: optObject,
});
export type ClientMessage = z.infer<typeof ClientMessage>;
export type ClientMessageInput = z.input<typeof ClientMessage>;

/** S→C envelope. */
export const ServerMessage = z.object({
  type: ServerMessageType,
  status: TaskStatus,
  user_request: optString,
  agent_name: optString,
  process_name: optString,
  root_name: optString,
  actions: z.array(Command).nullable().default(null),
  messages: z.array(z.string()).nullable().default(null),
  error: optString,
  session_id: optString,
  task_name: optString,
  timestamp: optString,
  response_id: optString,
  result: z.unknown().default(null),
});
export type ServerMessage = z.infer<typeof ServerMessage>;
export type ServerMessageInput = z.input<typeof ServerMessage>;

/** Key orders, taken from the schemas so they are declared only once. */
export const CLIENT_MESSAGE_KEYS = Object.keys(ClientMessage.shape) as (keyof ClientMessage)[];
export const SERVER_MESSAGE_KEYS = Object.keys(ServerMessage.shape) as (keyof ServerMessage)[];
export const COMMAND_KEYS = Object.keys(Command.shape) as (keyof Command)[];
export const RESULT_KEYS = Object.keys(Result.shape) as (keyof Result)[];

/** `metadata.system_info` as UFO's device client sends it (§5.2). Informational: stored whole, not enforced. */
export const DeviceSystemInfo = z.looseObject({
  device_id: z.string().optional(),
  platform: z.string().optional(),
  os_version: z.string().optional(),
  cpu_count: z.number().optional(),
  memory_total_gb: z.number().optional(),
  hostname: z.string().optional(),
  ip_address: z.string().optional(),
  supported_features: z.array(z.string()).optional(),
  platform_type: z.string().optional(),
  schema_version: z.string().optional(),
  custom_metadata: jsonObject.optional(),
});
export type DeviceSystemInfo = z.infer<typeof DeviceSystemInfo>;
