/** aipd's wire protocol: AIP messages, codecs and the error catalogue. Imports nothing of src/. */
export * from './enums.js';
export * from './messages.js';
export * from './binary-transfer.js';
export * from './stdio.js';
export * from './errors.js';
export * from './validate.js';
export * from './validators.js';
export * from './wire.js';
export * from './codec/index.js';
export { checkTree } from './codec/guards.js';
export { jsonBytesShape, jsonShape, type JsonShape } from './codec/prescan.js';
export { packValue } from './codec/msgpack.js';
export const PROTOCOL_VERSION = '1.0';
