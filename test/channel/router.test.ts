import { describe, expect, it } from 'vitest';
import {
  ChannelOp,
  decodeChannelFrame,
  encodeAccept,
  encodeAck,
  encodeData,
  encodeFin,
  encodeOpen,
  encodeReject,
  type ChannelFrame,
} from '../../protocol/channel.js';
import type { ChannelEndpoint } from '../../src/channel/endpoint.js';
import { ChannelRouter, type ChannelHost } from '../../src/channel/router.js';
import { FakeConnection, harness, randomBytes, until } from './helpers.js';

const frames = (c: FakeConnection): ChannelFrame[] =>
  c.sent.map((b) => {
    const d = decodeChannelFrame(b);
    if (!d.ok) throw d.error;
    return d.value;
  });

/** A router with raw (recording-only) connections: ctl and dev are parties of s1, eve is registered but not. */
function rawRouter(maxWindow?: number, openTimeoutMs?: number, maxChannelsPerSession?: number) {
  const conns = {
    ctl: new FakeConnection('1'),
    dev: new FakeConnection('2'),
    eve: new FakeConnection('3'),
    anon: new FakeConnection('4'),
  };
  const sessions = new Map([['s1', { requesterId: 'ctl', executorId: 'dev' }]]);
  const host: ChannelHost = {
    clientIdOf: (c) => (c === conns.ctl ? 'ctl' : c === conns.dev ? 'dev' : c === conns.eve ? 'eve' : null),
    sessionParties: (sid) => sessions.get(sid) ?? null,
    connectionOf: (id) =>
      id === 'ctl' ? conns.ctl : id === 'dev' ? conns.dev : id === 'eve' ? conns.eve : null,
  };
  return {
    router: new ChannelRouter(host, { maxWindow, openTimeoutMs, maxChannelsPerSession }),
    ...conns,
    sessions,
  };
}

const open = (id: number, sid = 's1', window = 1000) =>
  encodeOpen(id, window, { session_id: sid, kind: 'stream', params: {} });

describe('ChannelRouter', () => {
  it('relays OPEN to the other party under a server-chosen even id and carries data both ways', async () => {
    let devEp: ChannelEndpoint | null = null;
    const h = harness({ onDeviceOpen: (i) => (devEp = i.accept()) });
    const ep = await h.controller.open({ session_id: 's1', kind: 'stream', params: { command: 'cat' } });
    expect(ep.channel).toBe(1);
    await until(() => devEp !== null);
    expect(devEp!.channel).toBe(2);
    expect(h.router.stats().channels).toBe(1);
    await ep.write(Buffer.from('to device'));
    expect(Buffer.from((await devEp!.read())!).toString()).toBe('to device');
    await devEp!.write(Buffer.from('to controller'));
    expect(Buffer.from((await ep.read())!).toString()).toBe('to controller');
    await ep.end();
    await devEp!.end({ exit_code: 0 });
    expect(await devEp!.read()).toBeNull();
    expect(await ep.read()).toBeNull();
    expect(ep.trailer).toEqual({ exit_code: 0 });
    await until(() => h.router.stats().channels === 0);
    expect(h.router.stats()).toEqual({ channels: 0, bufferedBytes: 0 });
  });

  it('refuses OPEN from non-parties, unregistered connections, dead sessions and bad ids', () => {
    const r = rawRouter();
    r.router.onFrame(r.eve, open(1));
    r.router.onFrame(r.anon, open(1));
    r.router.onFrame(r.ctl, open(1, 'nope'));
    r.router.onFrame(r.ctl, open(2)); // even ids belong to the server
    expect(frames(r.eve)).toMatchObject([{ op: ChannelOp.REJECT, channel: 1, code: 7002 }]);
    expect(frames(r.anon)).toMatchObject([{ op: ChannelOp.REJECT, code: 7002 }]);
    expect(frames(r.ctl)).toMatchObject([
      { op: ChannelOp.REJECT, code: 7003 },
      { op: ChannelOp.REJECT, channel: 2, code: 7007 },
    ]);
    expect(r.dev.sent).toEqual([]);
    expect(r.router.stats().channels).toBe(0);
  });

  it('refuses a relayed OPEN over the session quota (7017), and takes one again once a channel is freed', () => {
    const r = rawRouter(undefined, undefined, 2);
    r.router.onFrame(r.ctl, open(1));
    r.router.onFrame(r.ctl, open(3));
    r.router.onFrame(r.ctl, open(5));
    const refused = frames(r.ctl).filter((f) => f.op === ChannelOp.REJECT);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ channel: 5, code: 7017 });
    expect(frames(r.dev).filter((f) => f.op === ChannelOp.OPEN)).toHaveLength(2);
    // The device refuses the first: its place is free, and the next OPEN goes through.
    const first = frames(r.dev).find((f) => f.op === ChannelOp.OPEN)!;
    r.router.onFrame(r.dev, encodeReject(first.channel, 7012, 'no'));
    r.router.onFrame(r.ctl, open(7));
    expect(frames(r.dev).filter((f) => f.op === ChannelOp.OPEN)).toHaveLength(3);
  });

  it('resets both ends when the other party never answers an OPEN', async () => {
    const r = rawRouter(undefined, 50);
    r.router.onFrame(r.ctl, open(1));
    expect(frames(r.dev)).toMatchObject([{ op: ChannelOp.OPEN }]);
    expect(r.router.stats().channels).toBe(1);
    await until(() => r.router.stats().channels === 0);
    expect(frames(r.ctl)).toMatchObject([
      { op: ChannelOp.RESET, channel: 1, code: 7016, reason: 'Channel open was not answered within 50 ms' },
    ]);
    expect(frames(r.dev).at(-1)).toMatchObject({ op: ChannelOp.RESET, code: 7016 });
  });

  it("a non-party cannot use another connection's channel ids", () => {
    const r = rawRouter();
    r.router.onFrame(r.ctl, open(1));
    const [o] = frames(r.dev);
    expect(o).toMatchObject({
      op: ChannelOp.OPEN,
      channel: 2,
      window: 1000,
      body: { session_id: 's1', kind: 'stream' },
    });
    r.router.onFrame(r.dev, encodeAccept(2, 500));
    for (const id of [1, 2]) {
      r.router.onFrame(r.eve, encodeData(id, 0, new Uint8Array([1])));
      r.router.onFrame(r.eve, encodeAccept(id, 1));
      r.router.onFrame(r.eve, encodeAck(id, 0, 0, 1));
      r.router.onFrame(r.eve, encodeFin(id, 0));
    }
    expect(frames(r.eve).map((f) => [f.op, (f as { code?: number }).code])).toEqual([
      [ChannelOp.RESET, 7001],
      [ChannelOp.RESET, 7001],
      [ChannelOp.RESET, 7001],
      [ChannelOp.RESET, 7001],
    ]);
    expect(frames(r.dev)).toHaveLength(1);
    expect(frames(r.ctl)).toMatchObject([{ op: ChannelOp.ACCEPT, channel: 1, window: 500 }]);
    // The real channel still works.
    r.router.onFrame(r.ctl, encodeData(1, 0, new Uint8Array([9])));
    expect(frames(r.dev).at(-1)).toMatchObject({ op: ChannelOp.DATA, channel: 2, seq: 0 });
  });

  it("data beyond the reader's window resets both sides (7005) and frees the channel", () => {
    const r = rawRouter();
    r.router.onFrame(r.ctl, open(1));
    r.router.onFrame(r.dev, encodeAccept(2, 100));
    r.router.onFrame(r.ctl, encodeData(1, 0, new Uint8Array(60)));
    expect(r.router.stats()).toEqual({ channels: 1, bufferedBytes: 60 });
    r.router.onFrame(r.dev, encodeAck(2, 1, 60, 100));
    r.router.onFrame(r.ctl, encodeData(1, 1, new Uint8Array(100)));
    expect(r.router.stats().bufferedBytes).toBe(100);
    r.router.onFrame(r.ctl, encodeData(1, 2, new Uint8Array(1)));
    expect(frames(r.ctl).at(-1)).toMatchObject({ op: ChannelOp.RESET, channel: 1, code: 7005 });
    expect(frames(r.dev).at(-1)).toMatchObject({ op: ChannelOp.RESET, channel: 2, code: 7005 });
    expect(frames(r.dev).filter((f) => f.op === ChannelOp.DATA)).toHaveLength(2);
    expect(r.router.stats()).toEqual({ channels: 0, bufferedBytes: 0 });
  });

  it('clamps advertised windows to maxWindow and rejects acks of unsent bytes', () => {
    const r = rawRouter(4096);
    r.router.onFrame(r.ctl, open(1, 's1', 1 << 20));
    expect(frames(r.dev)[0]).toMatchObject({ op: ChannelOp.OPEN, window: 4096 });
    r.router.onFrame(r.dev, encodeAccept(2, 1 << 30));
    expect(frames(r.ctl)[0]).toMatchObject({ op: ChannelOp.ACCEPT, window: 4096 });
    r.router.onFrame(r.dev, encodeAck(2, 0, 10, 4096));
    expect(frames(r.dev).at(-1)).toMatchObject({ op: ChannelOp.RESET, code: 7006 });
    expect(r.router.stats().channels).toBe(0);
  });

  it('keeps flowing when the router clamps windows below what the endpoints advertise', async () => {
    let devEp: ChannelEndpoint | null = null;
    const h = harness({
      onDeviceOpen: (i) => (devEp = i.accept()),
      window: 1 << 20,
      maxWindow: 4096,
      maxChunk: 1000,
    });
    const ep = await h.controller.open({ session_id: 's1', kind: 'stream', params: {} });
    const data = randomBytes(100_000);
    const w = ep.write(data).then(() => ep.end());
    await until(() => devEp !== null);
    const parts: Uint8Array[] = [];
    for (let c = await devEp!.read(); c !== null; c = await devEp!.read()) parts.push(c);
    await w;
    expect(Buffer.concat(parts).equals(Buffer.from(data))).toBe(true);
    expect(ep.stats().maxInFlight).toBeLessThanOrEqual(4096);
  });

  it('a killed reader leaves no channels or buffers behind', async () => {
    const h = harness({ onDeviceOpen: (i) => void i.accept(), window: 32768, maxChunk: 8192 });
    const eps = await Promise.all(
      [1, 2, 3].map(() => h.controller.open({ session_id: 's1', kind: 'port', params: { port: 1 } })),
    );
    const writes = eps.map((ep) => ep.write(randomBytes(1 << 20)));
    await until(() => h.router.stats().bufferedBytes === 3 * 32768);
    expect(eps.every((ep) => ep.stats().inFlight === 32768)).toBe(true);
    h.deviceConn.close();
    h.router.onConnectionClosed(h.deviceConn);
    h.device.closeAll();
    expect(h.router.stats()).toEqual({ channels: 0, bufferedBytes: 0 });
    for (const w of writes) await expect(w).rejects.toMatchObject({ code: 7009 });
    expect(eps.every((ep) => ep.state === 'reset')).toBe(true);
    expect(h.controller.size).toBe(0);
  });

  it('onSessionEnded resets both sides', async () => {
    let devEp: ChannelEndpoint | null = null;
    const h = harness({ onDeviceOpen: (i) => (devEp = i.accept()) });
    const ep = await h.controller.open({ session_id: 's1', kind: 'stream', params: {} });
    h.sessions.delete('s1');
    h.router.onSessionEnded('s1');
    await until(() => ep.state === 'reset' && devEp?.state === 'reset');
    expect(ep.error?.code).toBe(7010);
    expect(devEp!.error?.code).toBe(7010);
    expect(h.router.stats().channels).toBe(0);
    await expect(h.controller.open({ session_id: 's1', kind: 'stream', params: {} })).rejects.toMatchObject({
      code: 7003,
    });
  });

  it('the server can open a channel to a device itself (openLocal)', async () => {
    const h = harness({
      onDeviceOpen: (i) => {
        const ep = i.accept();
        void (async () => {
          const c = await ep.read();
          await ep.write(Buffer.from(`echo:${Buffer.from(c!).toString()}:${String(i.params.tag)}`));
          await ep.end();
        })();
      },
    });
    const ep = await h.router.openLocal({
      sessionId: 's1',
      party: 'executor',
      kind: 'stream',
      params: { tag: 't' },
    });
    expect(ep.channel % 2).toBe(0);
    await ep.write(Buffer.from('hi'));
    await ep.end();
    expect(Buffer.from((await ep.read())!).toString()).toBe('echo:hi:t');
    expect(await ep.read()).toBeNull();
    await until(() => h.router.stats().channels === 0);
  });

  it('never throws on garbage and resets a known channel that receives a malformed frame', () => {
    const r = rawRouter();
    expect(() => r.router.onFrame(r.ctl, new Uint8Array([0xc1]))).not.toThrow();
    r.router.onFrame(r.ctl, open(1));
    r.router.onFrame(r.dev, encodeAccept(2, 100));
    r.router.onFrame(r.ctl, new Uint8Array([0xc1, 5, 0, 0, 0, 1, 0]));
    expect(frames(r.dev).at(-1)).toMatchObject({ op: ChannelOp.RESET, channel: 2, code: 7000 });
    expect(r.router.stats().channels).toBe(0);
  });
});
