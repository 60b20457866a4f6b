/**
 * The `metadata.system_info` a device sends at registration, in the shape of UFO's `DeviceSystemInfo`
 * (ufo-aip.md §5.2). Collected from `node:os`; informational only.
 */
import os from 'node:os';
import type { DeviceSystemInfo, Platform } from '../../protocol/index.js';

const FEATURES: Record<Platform, string[]> = {
  windows: ['gui', 'cli', 'browser', 'file_system', 'office', 'windows_apps'],
  linux: ['gui', 'cli', 'browser', 'file_system', 'linux_apps'],
  mobile: ['mobile_touch', 'mobile_apps', 'camera', 'gps'],
};

function osName(): string {
  const p = os.platform();
  return p === 'win32' ? 'windows' : p;
}

function firstIpv4(): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const addr of list ?? []) if (addr.family === 'IPv4' && !addr.internal) return addr.address;
  }
  return '127.0.0.1';
}

export function collectSystemInfo(deviceId: string, platform: Platform): DeviceSystemInfo {
  return {
    device_id: deviceId,
    platform: osName(),
    os_version: os.release(),
    cpu_count: os.cpus().length,
    memory_total_gb: Math.round((os.totalmem() / 1024 ** 3) * 100) / 100,
    hostname: os.hostname(),
    ip_address: firstIpv4(),
    supported_features: FEATURES[platform],
    platform_type: platform === 'mobile' ? 'mobile' : 'computer',
    schema_version: '1.0',
    custom_metadata: {},
  };
}
