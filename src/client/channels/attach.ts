/**
 * Attaches a ChannelMux to an AIP client (AipDeviceClient or AipControllerClient): channel frames (first byte
 * 0xC1) go to the mux instead of AIP decoding, the mux sends on the client's registered socket, and every
 * channel fails with CHANNEL_PEER_GONE when the connection drops.
 */
import { isChannelFrame } from '../../../protocol/channel.js';
import { ChannelMux, type ChannelMuxOptions } from '../../channel/mux.js';
import type { BinaryFrameHandler } from '../connection.js';

/** What the mux needs from a client; both AipDeviceClient and AipControllerClient fit. */
export interface ChannelCapableClient {
  sendBinaryFrame(frame: Uint8Array): boolean;
  setBinaryFrameHandler(handler: BinaryFrameHandler | null): void;
  on(event: 'disconnected', listener: () => void): unknown;
}

export type AttachMuxOptions = Omit<ChannelMuxOptions, 'send' | 'side'>;

export function attachChannelMux(client: ChannelCapableClient, opts: AttachMuxOptions = {}): ChannelMux {
  const mux = new ChannelMux({ ...opts, side: 'client', send: (frame) => client.sendBinaryFrame(frame) });
  client.setBinaryFrameHandler((bytes) => {
    if (!isChannelFrame(bytes)) return false;
    mux.handleFrame(bytes);
    return true;
  });
  client.on('disconnected', () => mux.closeAll());
  return mux;
}
