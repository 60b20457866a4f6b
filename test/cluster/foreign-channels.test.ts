/** ForeignChannels on raw channel frames: ids translated both ways, and each translation ended by what ends its channel. */
import { describe, expect, it } from 'vitest';
import type { AipError } from '../../protocol/index.js';
import { aipError } from '../../protocol/index.js';
import {
  ChannelOp,
  encodeAccept,
  encodeData,
  encodeFin,
  encodeOpen,
  encodeReset,
} from '../../protocol/channel.js';
import type { ChannelPeer } from '../../src/channel/router.js';
import { ForeignChannels, type ForeignIds } from '../../src/server/foreign-channels.js';

class Ids implements ForeignIds {
  readonly held = new Set<number>();
  next = 2;
  constructor(readonly max = 64) {}
  reserveForeign(): number | AipError {
    if (this.held.size >= this.max) return aipError('CHANNEL_TOO_MANY', { max: this.max });
    const id = this.next;
    this.next += 2;
    this.held.add(id);
    return id;
  }
  releaseForeign(_conn: ChannelPeer, id: number): void {
    this.held.delete(id);
  }
}

const sent: Uint8Array[] = [];
const conn: ChannelPeer = {
  id: 'c',
  closed: false,
  sendRaw: (d) => {
    sent.push(d);
    return true;
  },
};
const idOf = (b: Uint8Array): number => Buffer.from(b).readUInt32BE(2);
const open = (id: number): Uint8Array => encodeOpen(id, 65536, { session_id: 's', kind: 'file', params: {} });
const noReply = (): void => {
  throw new Error('no reply expected');
};

describe('ForeignChannels', () => {
  it('gives an OPEN from another node a local id, and translates both ways', () => {
    const ids = new Ids();
    ids.next = 10;
    const f = new ForeignChannels(ids);
    const out = f.fromNode('n1', 'i1', 'dev', conn, open(2), noReply)!;
    expect(out[1]).toBe(ChannelOp.OPEN);
    expect(idOf(out)).toBe(10);
    const accept = f.fromClient('dev', encodeAccept(10, 4096))!;
    expect(accept.node).toBe('n1');
    expect(idOf(accept.frame)).toBe(2);
    expect(idOf(f.fromNode('n1', 'i1', 'dev', conn, encodeData(2, 0, Buffer.from('x')), noReply)!)).toBe(10);
    // Another node's channel 2 is another channel.
    expect(idOf(f.fromNode('n2', 'i1', 'dev', conn, open(2), noReply)!)).toBe(12);
    expect(f.fromClient('dev', encodeAccept(12, 4096))!.node).toBe('n2');
    // A frame of no translated channel is this node's router's.
    expect(f.fromClient('dev', encodeAccept(4, 4096))).toBeNull();
    expect(f.fromNode('n1', 'i1', 'dev', conn, encodeData(4, 0, Buffer.from('x')), noReply)).toBeNull();
    expect(f.size).toBe(2);
  });

  it('ends a translation once both FINs have passed, or at a RESET either way, and frees its id', () => {
    const ids = new Ids();
    const f = new ForeignChannels(ids);
    const a = idOf(f.fromNode('n1', 'i1', 'dev', conn, open(2), noReply)!);
    const b = idOf(f.fromNode('n1', 'i1', 'dev', conn, open(4), noReply)!);
    const c = idOf(f.fromNode('n1', 'i1', 'dev', conn, open(6), noReply)!);
    f.fromClient('dev', encodeFin(a, 0, null));
    expect(f.size).toBe(3);
    f.fromNode('n1', 'i1', 'dev', conn, encodeFin(2, 0, null), noReply);
    expect(ids.held.has(a)).toBe(false);
    f.fromClient('dev', encodeReset(b, 1, 'x'));
    expect(ids.held.has(b)).toBe(false);
    f.fromNode('n1', 'i1', 'dev', conn, encodeReset(6, 1, 'x'), noReply);
    expect(ids.held.has(c)).toBe(false);
    expect(f.size).toBe(0);
  });

  it('refuses an OPEN over the connection limit, or on an id in use, to its node', () => {
    const ids = new Ids(1);
    const f = new ForeignChannels(ids);
    f.fromNode('n1', 'i1', 'dev', conn, open(2), noReply);
    const replies: Uint8Array[] = [];
    expect(f.fromNode('n1', 'i1', 'dev', conn, open(2), (r) => replies.push(r))).toBeNull();
    expect(f.fromNode('n2', 'i1', 'dev', conn, open(8), (r) => replies.push(r))).toBeNull();
    expect(replies.map((r) => [r[1], idOf(r)])).toEqual([
      [ChannelOp.REJECT, 2],
      [ChannelOp.REJECT, 8],
    ]);
    expect(ids.held.size).toBe(1);
  });

  it("resets the client's end of the channels of a node that is gone or restarted", () => {
    const ids = new Ids();
    const f = new ForeignChannels(ids);
    const a = idOf(f.fromNode('n1', 'i1', 'dev', conn, open(2), noReply)!);
    const b = idOf(f.fromNode('n2', 'i1', 'dev', conn, open(2), noReply)!);
    const c = idOf(f.fromNode('n3', 'i1', 'dev', conn, open(2), noReply)!);
    sent.length = 0;
    // n1 is dead, n2 restarted (another incarnation holds its lease), n3 lives on.
    f.retainLive(
      new Map([
        ['n2', 'i2'],
        ['n3', 'i1'],
      ]),
    );
    expect(sent.map((x) => [x[1], idOf(x)])).toEqual([
      [ChannelOp.RESET, a],
      [ChannelOp.RESET, b],
    ]);
    expect([...ids.held]).toEqual([c]);
    // A frame from a new incarnation of n3 ends what its earlier one had open, before the look sees it.
    sent.length = 0;
    const d = idOf(f.fromNode('n3', 'i2', 'dev', conn, open(2), noReply)!);
    expect(sent.map((x) => [x[1], idOf(x)])).toEqual([[ChannelOp.RESET, c]]);
    expect([...ids.held]).toEqual([d]);
    // The client went: what it held is released.
    f.clientGone('dev');
    expect(ids.held.size).toBe(0);
    expect(f.size).toBe(0);
  });
});
