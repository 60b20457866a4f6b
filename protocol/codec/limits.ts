/** Decode-time limits against hostile input. */
import type { AipError } from '../errors.js';

export interface DecodeLimits {
  /** Largest frame accepted, in bytes. UFO's server and clients use 100 MiB. */
  readonly maxFrameBytes: number;
  /** Deepest nesting of objects and arrays accepted. */
  readonly maxDepth: number;
  /** Most objects and arrays in one message (checked on the bytes, before parsing). Default DEFAULT_MAX_CONTAINERS. */
  readonly maxContainers?: number;
}

/** Objects and arrays one message may hold: far above any AIP frame, far below what bloats memory. */
export const DEFAULT_MAX_CONTAINERS = 100_000;

export const DEFAULT_LIMITS: DecodeLimits = {
  maxFrameBytes: 100 * 1024 * 1024,
  maxDepth: 128,
  maxContainers: DEFAULT_MAX_CONTAINERS,
};

/** Outcome of a decode: never throws for bad input. */
export type Decoded<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: AipError };
