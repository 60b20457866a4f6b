/**
 * The knobs of the SSM-compatible stream endpoint (`/sessions/{id}/ssm`, src/ssm/, docs/ssm.md), kept apart from
 * config.ts: the zod fields spread into ServerConfig and the flags spread into its flag table.
 */
import { z } from 'zod';

const positive = z.number().int().positive();

export const SSM_CONFIG = {
  /**
   * The AgentVersion the handshake announces. The plugin forwards ports with smux when it is > 3.0.196.0 (and
   * turns smux keepalive off when > 3.1.1511.0); `3.0.0.0` gives basic (one connection at a time) forwarding.
   * A session may override it with the parameter `ssmAgentVersion`.
   */
  ssmAgentVersion: z
    .string()
    .regex(/^\d{1,9}\.\d{1,9}\.\d{1,9}\.\d{1,9}$/, { error: 'must be four dot-separated integers' })
    .default('3.3.40.0'),
  /** How long the server waits for the plugin's HandshakeResponse (SSM's agent: 15 s). */
  ssmHandshakeTimeoutMs: positive.default(15_000),
  /** How long a session's data-channel state (sequence numbers, unacked output) outlives a dropped socket. */
  ssmResumeGraceMs: positive.default(60_000),
  /** Unacknowledged output messages kept per session; at the cap output stops being taken from the device. */
  ssmOutgoingWindow: positive.max(100_000).default(1_000),
  /** Largest payload of one output message (SSM's agent: 1024). */
  ssmChunkBytes: positive.min(64).max(65_536).default(1_024),
  /** Out-of-order input messages kept per session, and their bytes; more are dropped unacknowledged. */
  ssmIncomingBufferMessages: positive.max(100_000).default(1_000),
  ssmIncomingBufferBytes: positive.default(4 * 1024 * 1024),
  /** Largest data-channel frame accepted from the plugin; larger ones are dropped (the plugin sends ≤ 1144). */
  ssmMaxFrameBytes: positive.min(1_024).default(256 * 1024),
  /** How often unacknowledged output is checked for a resend (SSM: 100 ms). */
  ssmResendIntervalMs: positive.default(100),
  /** Sends of one message before the plugin counts as unresponsive (SSM: 3000). */
  ssmMaxResendAttempts: positive.default(3_000),
  /**
   * After a resume, how long output sent again on the new socket may go unacknowledged before it counts as output
   * the plugin already had (the plugin never acknowledges a duplicate).
   */
  ssmResumeAckWaitMs: positive.default(5_000),
  /** At the end of a session, how long to wait for the last output's acks before `channel_closed`. */
  ssmCloseWaitMs: positive.default(5_000),
  /** A shell's PTY opens with the plugin's first Size message, or after this long with the session's size. */
  ssmFirstSizeWaitMs: positive.default(1_000),
  /** smux streams (forwarded connections) one multiplexed Port session may have open; a SYN beyond gets a FIN. */
  ssmMaxMuxStreams: positive.max(65_536).default(256),
  /** NOP interval for a plugin that runs smux keepalives (old AgentVersion; its timeout is 30 s). */
  ssmSmuxKeepaliveMs: positive.default(10_000),
};

export const SSM_FLAGS = {
  'ssm-agent-version': { key: 'ssmAgentVersion', type: 'string' },
  'ssm-handshake-timeout-ms': { key: 'ssmHandshakeTimeoutMs', type: 'int' },
  'ssm-resume-grace-ms': { key: 'ssmResumeGraceMs', type: 'int' },
  'ssm-outgoing-window': { key: 'ssmOutgoingWindow', type: 'int' },
  'ssm-chunk-bytes': { key: 'ssmChunkBytes', type: 'int' },
  'ssm-incoming-buffer-messages': { key: 'ssmIncomingBufferMessages', type: 'int' },
  'ssm-incoming-buffer-bytes': { key: 'ssmIncomingBufferBytes', type: 'int' },
  'ssm-max-frame-bytes': { key: 'ssmMaxFrameBytes', type: 'int' },
  'ssm-resend-interval-ms': { key: 'ssmResendIntervalMs', type: 'int' },
  'ssm-max-resend-attempts': { key: 'ssmMaxResendAttempts', type: 'int' },
  'ssm-resume-ack-wait-ms': { key: 'ssmResumeAckWaitMs', type: 'int' },
  'ssm-close-wait-ms': { key: 'ssmCloseWaitMs', type: 'int' },
  'ssm-first-size-wait-ms': { key: 'ssmFirstSizeWaitMs', type: 'int' },
  'ssm-max-mux-streams': { key: 'ssmMaxMuxStreams', type: 'int' },
  'ssm-smux-keepalive-ms': { key: 'ssmSmuxKeepaliveMs', type: 'int' },
} as const;
