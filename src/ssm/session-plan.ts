/**
 * What a typed session becomes on the SSM data channel: the handshake's SessionType and Properties, and the
 * bridge to the device. The AgentVersion is the session's `ssmAgentVersion` parameter, else --ssm-agent-version;
 * with the Port `forwardingType` parameter (default `LocalPortForwarding`) it decides the plugin's port mode.
 */
import type { LiveRemote } from '../remote/remote-sessions.js';
import type { Bridge, BridgeHost } from './bridge.js';
import {
  portMode,
  smuxKeepalive,
  type HandshakePlan,
  type PortMode,
  type SsmSessionType,
} from './handshake.js';
import { MuxBridge, type MuxLimits } from './mux-bridge.js';
import { PortBridge } from './port-bridge.js';
import type { ReliabilityLimits } from './reliability.js';
import { ShellBridge } from './shell-bridge.js';

export interface SsmOptions extends ReliabilityLimits {
  readonly agentVersion: string;
  readonly handshakeTimeoutMs: number;
  readonly resumeGraceMs: number;
  readonly resendIntervalMs: number;
  readonly closeWaitMs: number;
  readonly chunkBytes: number;
  readonly maxFrameBytes: number;
  readonly inputMaxBytes: number;
  readonly highWaterMarkBytes: number;
  readonly firstSizeWaitMs: number;
  readonly mux: MuxLimits;
}

const first = (v: unknown): string | undefined =>
  Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined;

export function agentVersionOf(live: LiveRemote, opts: Pick<SsmOptions, 'agentVersion'>): string {
  return first(live.params.ssmAgentVersion) ?? opts.agentVersion;
}

/** The Port session's forwarding mode as the plugin will choose it. */
export function portModeOf(live: LiveRemote, opts: Pick<SsmOptions, 'agentVersion'>): PortMode {
  return portMode(agentVersionOf(live, opts), first(live.params.forwardingType) ?? 'LocalPortForwarding');
}

export function handshakePlan(live: LiveRemote, opts: Pick<SsmOptions, 'agentVersion'>): HandshakePlan {
  const agentVersion = agentVersionOf(live, opts);
  const name = live.type.name as SsmSessionType;
  if (name !== 'Port') {
    const command = first(live.params.command);
    return { agentVersion, sessionType: name, properties: command ? { commands: command } : {} };
  }
  const properties: Record<string, string> = {
    portNumber: first(live.params.portNumber) ?? '',
    type: first(live.params.forwardingType) ?? 'LocalPortForwarding',
  };
  const local = first(live.params.localPortNumber);
  if (local !== undefined) properties.localPortNumber = local;
  return { agentVersion, sessionType: 'Port', properties };
}

export function createBridge(host: BridgeHost, opts: SsmOptions): Bridge {
  if (host.live.type.name !== 'Port') return new ShellBridge(host, opts.firstSizeWaitMs);
  const mode = portModeOf(host.live, opts);
  if (mode === 'mux') return new MuxBridge(host, smuxKeepalive(agentVersionOf(host.live, opts)), opts.mux);
  return new PortBridge(host, mode);
}
