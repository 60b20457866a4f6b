/** aipd's TypeScript AIP client library: a device client and a controller (constellation) client over `ws`. */
export { AipDeviceClient, NO_HANDLER_ERROR } from './device.js';
export type { CommandHandler, DeviceClientOptions, TaskHandler } from './device.js';
export { AipControllerClient, DEVICE_INFO_TIMEOUT_MS } from './controller.js';
export type { ControllerClientOptions, ControllerTaskRequest, RunTaskRequest } from './controller.js';
export { AipClientBase, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_RESUME_WAIT_MS } from './client-base.js';
export type { BaseClientOptions, ClientEvents, TaskAck, TaskRequest } from './client-base.js';
export { AipConnection, RECONNECT_DEFAULTS } from './connection.js';
export type {
  BinaryFrameHandler,
  ConnectionOptions,
  DisconnectInfo,
  ReconnectingInfo,
  ReconnectOptions,
} from './connection.js';
export { failAll, failureResult, normalizeResults } from './results.js';
export { collectSystemInfo } from './system-info.js';
