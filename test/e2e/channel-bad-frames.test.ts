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

  it('tells each party of a channel reset for a protocol violation its own channel id, and the innocent one whose fault it was', async () => {
    const devId = await openChannel(3);
    expect(devId).not.toBe(3);
    const [g, d] = [galaxy.frames.length, device.frames.length];
    galaxy.ws.send(encodeData(3, 7, Buffer.from('out of order'))); // the first DATA must be seq 0
    await waitFor(() => resets(galaxy, g).length > 0 && resets(device, d).length > 0, 5000, 'both RESETs');
    expect(resets(galaxy, g)).toEqual([
      {
        op: ChannelOp.RESET,
        channel: 3,
        code: 7006,
        reason: 'Channel 3: protocol violation: DATA seq 7, expected 0',
      },
    ]);
    expect(resets(device, d)).toEqual([
      {
        op: ChannelOp.RESET,
        channel: devId,
        code: 7006,
        reason: `Channel ${devId}: protocol violation: DATA seq 7, expected 0 (from the other party)`,
      },
    ]);

    // the device writes past the 4-byte window the galaxy opened with
    const devId2 = await openChannel(5, 4);
    const [g2, d2] = [galaxy.frames.length, device.frames.length];
    device.ws.send(encodeData(devId2, 0, Buffer.from('ten bytes!')));
    await waitFor(() => resets(galaxy, g2).length > 0 && resets(device, d2).length > 0, 5000, 'both RESETs');
    expect(resets(device, d2)).toEqual([
      {
        op: ChannelOp.RESET,
        channel: devId2,
        code: 7005,
        reason: `Channel ${devId2}: 10 bytes in flight exceed the advertised window of 4 bytes`,
      },
    ]);
    expect(resets(galaxy, g2)).toEqual([
      {
        op: ChannelOp.RESET,
        channel: 5,
        code: 7005,
        reason:
          'Channel 5: 10 bytes in flight exceed the advertised window of 4 bytes (from the other party)',
      },
    ]);

    // a malformed frame on an open channel: its sender is told what was wrong, the other party that it was not it
    const devId3 = await openChannel(7);
    const [g3, d3] = [galaxy.frames.length, device.frames.length];
    galaxy.ws.send(Buffer.from([0xc1, ChannelOp.ACK, 0, 0, 0, 7, 0]));
    await waitFor(() => resets(galaxy, g3).length > 0 && resets(device, d3).length > 0, 5000, 'both RESETs');
    const why = 'Invalid channel frame: op 5 needs at least 22 bytes, got 7';
    expect(resets(galaxy, g3)).toEqual([{ op: ChannelOp.RESET, channel: 7, code: 7000, reason: why }]);
    expect(resets(device, d3)).toEqual([
      { op: ChannelOp.RESET, channel: devId3, code: 7000, reason: `${why} (from the other party)` },
    ]);
    expect(server.channels.stats().channels).toBe(0);
    expect(device.ws.readyState).toBe(device.ws.OPEN);
    expect(galaxy.ws.readyState).toBe(galaxy.ws.OPEN);
  });
});
