/**
 * What crosses between cluster nodes on the bus (bus.ts), and its encoding.
 *
 * Every entry of a node's inbox stream is one `Envelope`: the sender's node and incarnation, a sequence number
 * that counts up by one per (sender incarnation → receiving node), and one `BusMessage`. The receiver applies a
 * sequence number once (a retried XADD whose reply was lost arrives twice and is dropped the second time) and
 * treats a jump as messages lost (trimmed unread), which fails the affected sessions loudly.
 *
 * Envelopes are msgpack (frames may carry bytes: UFO binary transfers, channel frames).
 */
import { Packr } from 'msgpackr';
import type { ServerMessageInput } from '../../protocol/index.js';

/** A frame for one of the receiving node's clients (`to`, registered under `fence`). */
export type OutboundFrame =
  | { readonly kind: 'message'; readonly msg: ServerMessageInput }
  | { readonly kind: 'raw'; readonly data: string | Uint8Array; readonly isBinary: boolean }
  /** A data-channel frame (binary) from the sending node's channel router: its id is translated on arrival. */
  | { readonly kind: 'chan'; readonly data: Uint8Array }
  | { readonly kind: 'close'; readonly code: number; readonly reason: string };

export type BusMessage =
  /** Server → client: deliver `frame` to the local client `to` if it is still the registration `fence`. */
  | { readonly t: 'frame'; readonly to: string; readonly fence: number; readonly frame: OutboundFrame }
  /**
   * A `task` from a client of the sending node for a device of the receiving node: the session runs where its
   * device is. `info` is the requester's directory entry (the receiver may not have seen it yet).
   */
  | {
      readonly t: 'task';
      readonly from: string;
      readonly fence: number;
      readonly incarnation: string;
      readonly info: Record<string, unknown>;
      readonly msg: Record<string, unknown>;
    }
  /** The requester `client` of sessions on the receiving node disconnected (plainly) from the sending node. */
  | { readonly t: 'gone'; readonly client: string; readonly reason: 'disconnected' | 'slow_consumer' }
  /** Cancel the receiving node's live session `sid`; `reason` becomes its `task_end` error. */
  | { readonly t: 'cancel'; readonly sid: string; readonly reason: string }
  /** The session `sid` forwarded by the receiving node is not (or no longer) live on the sending node. */
  | { readonly t: 'forget'; readonly sid: string }
  /** The crashed session `sid`, requested by a client of the receiving node, resumed on the sending node. */
  | { readonly t: 'moved'; readonly sid: string }
  /** A channel frame a client of the sending node sent on a channel the receiving node routes. */
  | { readonly t: 'chan'; readonly from: string; readonly fence: number; readonly data: Uint8Array };

export interface Envelope {
  /** Sending node. */
  readonly s: string;
  /** Sending node's incarnation. */
  readonly i: string;
  /** Sequence number per (sender incarnation → receiver), from 1. */
  readonly q: number;
  readonly m: BusMessage;
}

const packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true, variableMapSize: true });

export function encodeEnvelope(env: Envelope): Buffer {
  return packr.pack(env);
}

/** The envelope in `buf`, or null when it is not one (logged by the caller and skipped). */
export function decodeEnvelope(buf: Buffer): Envelope | null {
  let v: unknown;
  try {
    v = packr.unpack(buf);
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object') return null;
  const e = v as Partial<Envelope>;
  if (typeof e.s !== 'string' || typeof e.i !== 'string' || typeof e.q !== 'number') return null;
  if (e.m === null || typeof e.m !== 'object' || typeof (e.m as { t?: unknown }).t !== 'string') return null;
  return e as Envelope;
}
