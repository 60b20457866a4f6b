/**
 * The registry of typed sessions. A type validates its `parameters`, says whether it is bound to a connected
 * device, and, for the SSM-style stream types, which data channel its stream WebSocket opens on the device.
 * A `session_type` that is not registered here is a plain record (the durable-sessions API).
 *
 *   type                 parameters (SSM's shape: every value a list of strings)     stream
 *   task                 — (AIP tasks are started by a `task` frame or /api/dispatch) —
 *   interactive          {} (optional idleTimeoutMs: ["600000"])                       —
 *   Standard_Stream      {} (optional rows/cols: ["40"], ["120"])                      a shell in a PTY
 *   InteractiveCommands  {command: ["top"]} (optional rows/cols)                       the command in a PTY
 *   Port                 {portNumber: ["8080"], localPortNumber?: ["0"]}               a TCP connection to the port
 *
 * Stream types also take `ssmAgentVersion` (["3.0.0.0"]: the AgentVersion of the SSM handshake), and Port takes
 * `forwardingType` (["LocalPortForwarding"], the default; anything else: the plugin forwards stdin/stdout).
 */
import { z } from 'zod';
import type { ChannelKind } from '../../protocol/channel.js';

export type StreamPlan =
  | {
      readonly kind: Extract<ChannelKind, 'stream'>;
      readonly params: Record<string, unknown>;
      readonly pty: true;
    }
  | {
      readonly kind: Extract<ChannelKind, 'port'>;
      readonly params: Record<string, unknown>;
      readonly pty: false;
    };

export interface SessionTypeSpec {
  readonly name: string;
  /** What the type is for (the OpenAPI document and errors use it). */
  readonly summary: string;
  /** Validates `parameters`; the parsed value is kept in the record's runtime_metadata. */
  readonly parameters: z.ZodType<Record<string, unknown>>;
  /** False for `task`: created by AIP, not by POST /sessions. */
  readonly creatable: boolean;
  /** Whether it has a stream (`stream_url`, tokens); `stream()` then gives the plan. */
  readonly hasStream: boolean;
  /** How its stream WebSocket reaches the device, or null when it has none. */
  stream(params: Record<string, unknown>, size: { rows: number; cols: number }): StreamPlan | null;
  /** Whether the stream ending ends the session (a shell, one command) or not (a port: more connections may come). */
  readonly endsWithStream: boolean;
}

const one = (what: string, re: RegExp): z.ZodType<[string]> =>
  z.tuple([z.string().regex(re, { error: `must be ${what}` })], {
    error: `must be a list of one string (${what})`,
  });
const portString = one(
  'a port number 1–65535',
  /^([1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])$/,
);
const localPortString = one('a port number 0–65535', /^\d{1,5}$/);
const sizeString = one('an integer 1–1000', /^([1-9]\d{0,2}|1000)$/);
const msString = one('milliseconds (1–999999999)', /^[1-9]\d{0,8}$/);

const agentVersion = one('an SSM agent version like 3.0.0.0', /^\d{1,9}\.\d{1,9}\.\d{1,9}\.\d{1,9}$/);
const forwardingType = one('a forwarding type like LocalPortForwarding', /^[A-Za-z][A-Za-z0-9_]{0,63}$/);
/** The SSM data channel's AgentVersion for this session (`ssm_stream_url`, docs/ssm.md); default --ssm-agent-version. */
const ssm = { ssmAgentVersion: agentVersion.optional() };
const ptySize = { rows: sizeString.optional(), cols: sizeString.optional(), ...ssm };
const num = (v: unknown): number | undefined => (Array.isArray(v) ? Number(v[0]) : undefined);

/** Rows and columns a stream starts with: the parameters', else what the client asked, else 24×80. */
function sized(
  params: Record<string, unknown>,
  size: { rows: number; cols: number },
): { rows: number; cols: number } {
  return { rows: num(params.rows) ?? size.rows, cols: num(params.cols) ?? size.cols };
}

export const SESSION_TYPES: readonly SessionTypeSpec[] = [
  {
    name: 'task',
    summary: 'an AIP task (started by a `task` frame or POST /api/dispatch)',
    parameters: z.object({}).strict(),
    creatable: false,
    hasStream: false,
    stream: () => null,
    endsWithStream: false,
  },
  {
    name: 'interactive',
    summary: 'a long-lived session on one connected device: execute, files, services',
    parameters: z.object({ idleTimeoutMs: msString.optional() }).strict(),
    creatable: true,
    hasStream: false,
    stream: () => null,
    endsWithStream: false,
  },
  {
    name: 'Standard_Stream',
    summary: "a shell on the device, in a PTY, over the session's stream_url",
    parameters: z.object({ ...ptySize, idleTimeoutMs: msString.optional() }).strict(),
    creatable: true,
    hasStream: true,
    stream: (p, size) => ({
      kind: 'stream',
      params: { framing: 'stdio', mode: 'shell', pty: sized(p, size) },
      pty: true,
    }),
    endsWithStream: true,
  },
  {
    name: 'InteractiveCommands',
    summary: "one command run interactively in a PTY, over the session's stream_url",
    parameters: z
      .object({
        command: z.tuple([z.string().min(1).max(4096)], { error: 'must be a list of one command string' }),
        ...ptySize,
        idleTimeoutMs: msString.optional(),
      })
      .strict(),
    creatable: true,
    hasStream: true,
    stream: (p, size) => ({
      kind: 'stream',
      params: {
        framing: 'stdio',
        mode: 'command',
        command: (p.command as string[])[0],
        shell: true,
        pty: sized(p, size),
      },
      pty: true,
    }),
    endsWithStream: true,
  },
  {
    name: 'Port',
    summary: 'forwarding to a TCP port on the device: each stream_url connection is one TCP connection',
    parameters: z
      .object({
        portNumber: portString,
        localPortNumber: localPortString.optional(),
        idleTimeoutMs: msString.optional(),
        ...ssm,
        forwardingType: forwardingType.optional(),
      })
      .strict(),
    creatable: true,
    hasStream: true,
    stream: (p) => ({
      kind: 'port',
      params: { port: Number((p.portNumber as string[])[0]), host: '127.0.0.1' },
      pty: false,
    }),
    endsWithStream: false,
  },
];

const BY_NAME = new Map(SESSION_TYPES.map((t) => [t.name, t]));

/** The typed session of this name, or undefined for a plain record. */
export function sessionType(name: string): SessionTypeSpec | undefined {
  return BY_NAME.get(name);
}

/** The idle timeout a session asked for in its parameters, if any. */
export function idleTimeoutOf(params: Record<string, unknown>): number | undefined {
  return num(params.idleTimeoutMs);
}
