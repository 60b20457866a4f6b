/**
 * Channel frames that break the rules, sent over real WebSockets to a real aipd by two plain `ws` parties of a live
 * session (a constellation and a device that holds its command): each gets a clear RESET, the server stays up, and
 * the connections and the channels not at fault go on.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ChannelOp,
  decodeChannelFrame,
  encodeAccept,
  encodeData,
  encodeOpen,
  type ChannelFrame,
} from '../../protocol/channel.js';
import { startTestServer } from '../helpers/aip-server.js';
import { heldSession, type Peer } from '../helpers/ws-peer.js';
import { waitFor } from './helpers.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;
type Reset = Extract<ChannelFrame, { op: typeof ChannelOp.RESET }>;

/** The channel frames `peer` received from frame `from` on. */
function channelFrames(peer: Peer, from = 0): ChannelFrame[] {
  return peer.frames.slice(from).flatMap((f) => {
    if (!('binary' in f) || f.binary[0] !== 0xc1) return [];
    const d = decodeChannelFrame(f.binary);
    if (!d.ok) throw d.error;
    return [d.value];
  });
}
const resets = (peer: Peer, from = 0): Reset[] =>
  channelFrames(peer, from).filter((f): f is Reset => f.op === ChannelOp.RESET);

describe('malformed channel frames through aipd', () => {
  let server: Server;
  let device: Peer;
  let galaxy: Peer;
  const SID = 'k@bad-dev@task1';

  /** The galaxy opens channel `id` (its receive window `window`); the device accepts. Returns the device's id. */
  async function openChannel(id: number, window = 64 * 1024): Promise<number> {
    const from = channelFrames(device).length;
    galaxy.ws.send(encodeOpen(id, window, { session_id: SID, kind: 'file', params: {} }));
    await waitFor(() => channelFrames(device).length > from, 5000, 'the OPEN at the device');
    const open = channelFrames(device)[from]!;
    expect(open.op).toBe(ChannelOp.OPEN);
    const seen = channelFrames(galaxy).length;
    device.ws.send(encodeAccept(open.channel, 64 * 1024));
    await waitFor(() => channelFrames(galaxy).length > seen, 5000, 'the ACCEPT at the galaxy');
    expect(channelFrames(galaxy)[seen]).toMatchObject({ op: ChannelOp.ACCEPT, channel: id });
    return open.channel;
  }

  beforeEach(async () => {
    server = await startTestServer({ commandTimeoutMs: 60_000 });
    ({ device, galaxy } = await heldSession(server.url, 'bad-dev', SID)); // the device holds its command
  });
  afterEach(async () => {
    device.ws.terminate();
    galaxy.ws.terminate();
    await server.close();
  });

  it('answers a frame shorter than the 6-byte header with RESET on channel 0, and the rest goes on', async () => {
    const devId = await openChannel(1);
    const devFrames = channelFrames(device).length;
    for (const short of [[0xc1], [0xc1, ChannelOp.DATA], [0xc1, ChannelOp.DATA, 0, 0, 1]]) {
      const from = galaxy.frames.length;
      galaxy.ws.send(Buffer.from(short));
      await waitFor(() => resets(galaxy, from).length > 0, 5000, `an answer to ${short.length} bytes`);
      expect(resets(galaxy, from)).toEqual([
        {
          op: ChannelOp.RESET,
          channel: 0,
          code: 7000,
          reason: `Invalid channel frame: frame of ${short.length} bytes is shorter than the 6-byte header`,
        },
      ]);
    }
    // the open channel still carries data, and the device was told of nothing
    galaxy.ws.send(encodeData(1, 0, Buffer.from('still here')));
    await waitFor(() => channelFrames(device).length > devFrames, 5000, 'the DATA at the device');
    const data = channelFrames(device).slice(devFrames);
    expect(data).toHaveLength(1);
    expect(data[0]).toMatchObject({ op: ChannelOp.DATA, channel: devId, seq: 0 });
    expect(Buffer.from((data[0] as { payload: Uint8Array }).payload).toString()).toBe('still here');
    expect(device.ws.readyState).toBe(device.ws.OPEN);
    expect(galaxy.ws.readyState).toBe(galaxy.ws.OPEN);
    expect(server.channels.stats().channels).toBe(1);
  });
});
