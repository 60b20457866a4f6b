/**
 * What a device serves, from its registration metadata. `aipd device` advertises `metadata.aipd_device`
 * ({version, channels, exec, pty, root, ports}); any other device (UFO's clients) advertises nothing, so it gets
 * AIP `command` frames only: execute then runs through its `execute_command` tool, and files, services and
 * streams are refused with a clear error.
 */
import type { ChannelKind } from '../../protocol/channel.js';
import { CHANNEL_KINDS } from '../../protocol/channel.js';
import type { ClientInfo } from '../state/client-directory.js';

export interface DeviceCapabilities {
  /** Data-channel kinds the device accepts. */
  readonly channels: readonly ChannelKind[];
  /** It runs commands (stdio stream channels and the execute_command tool). */
  readonly exec: boolean;
  /** Its streams get a real PTY. */
  readonly pty: boolean;
  /** Ports it forwards to (empty: none, or not said). */
  readonly ports: readonly number[];
}

const NONE: DeviceCapabilities = { channels: [], exec: false, pty: false, ports: [] };

export function deviceCapabilities(info: ClientInfo): DeviceCapabilities {
  const raw = info.metadata.aipd_device;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return NONE;
  const d = raw as Record<string, unknown>;
  const channels = Array.isArray(d.channels)
    ? CHANNEL_KINDS.filter((k) => (d.channels as unknown[]).includes(k))
    : [];
  const ports = Array.isArray(d.ports)
    ? d.ports.filter((p): p is number => Number.isInteger(p) && (p as number) > 0 && (p as number) < 65536)
    : [];
  return { channels, exec: d.exec === true, pty: d.pty === true, ports };
}
