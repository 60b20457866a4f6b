import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ChannelOp, decodeChannelFrame, encodeData, type ChannelFrame } from '../../protocol/channel.js';
import { aipError } from '../../protocol/index.js';
import { ChannelEndpoint } from '../../src/channel/endpoint.js';
import { laterInOrder, randomBytes, until } from './helpers.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Opener A and acceptor B over an async in-order wire. The wire checks the credit rule on every DATA. */
function pair(opts: { windowA?: number; windowB?: number; maxChunk?: number } = {}) {
  const log: { dir: 'ab' | 'ba'; f: ChannelFrame }[] = [];
  const violations: string[] = [];
  const flow = {
    ab: { sent: 0, consumed: 0, window: opts.windowB ?? 65536 },
    ba: { sent: 0, consumed: 0, window: opts.windowA ?? 65536 },
  };
  const ends = {} as { a: ChannelEndpoint; b: ChannelEndpoint };
  const watch = (dir: 'ab' | 'ba', f: ChannelFrame): void => {
    log.push({ dir, f });
    const mine = flow[dir];
    const theirs = flow[dir === 'ab' ? 'ba' : 'ab'];
    if (f.op === ChannelOp.DATA) {
      mine.sent += f.payload.byteLength;
      if (mine.sent - mine.consumed > mine.window)
        violations.push(`${dir}: ${mine.sent - mine.consumed} > ${mine.window}`);
    }
    if (f.op === ChannelOp.ACK) {
      theirs.consumed = f.consumed;
      theirs.window = f.window;
    }
  };
  const ab = laterInOrder((bytes) => {
    const d = decodeChannelFrame(bytes);
    if (!d.ok) throw d.error;
    watch('ab', d.value);
    if (d.value.op === ChannelOp.OPEN) ends.b.accept();
    else ends.b.handleFrame(d.value);
  });
  const ba = laterInOrder((bytes) => {
    const d = decodeChannelFrame(bytes);
    if (!d.ok) throw d.error;
    watch('ba', d.value);
    ends.a.handleFrame(d.value);
  });
  const a = (ends.a = new ChannelEndpoint({
    channel: 1,
    send: ab.send,
    receiveWindow: opts.windowA ?? 65536,
    maxChunk: opts.maxChunk,
    initialState: 'opening',
  }));
  const b = (ends.b = new ChannelEndpoint({
    channel: 1,
    send: ba.send,
    receiveWindow: opts.windowB ?? 65536,
    maxChunk: opts.maxChunk,
    initialState: 'open',
    sendWindow: opts.windowA ?? 65536,
  }));
  a.sendOpen({ session_id: 's', kind: 'stream', params: {} });
  return { a, b, log, violations };
}

async function readAll(ep: ChannelEndpoint, slow = false): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (;;) {
    const c = await ep.read();
    if (c === null) return Buffer.concat(parts);
    parts.push(c);
    if (slow) await new Promise((r) => setImmediate(r));
  }
}

describe('ChannelEndpoint', () => {
  it('delivers many writes in order, with increasing seq and cumulative acks', async () => {
    const { a, b, log, violations } = pair({ windowB: 16384, maxChunk: 4096 });
    await a.opened();
    expect(a.state).toBe('open');
    const data = randomBytes(200_000);
    const writer = (async () => {
      for (let off = 0; off < data.length;) {
        const n = Math.min(data.length - off, 1 + ((off * 7919) % 9000));
        await a.write(data.subarray(off, off + n));
        off += n;
      }
      await a.end();
    })();
    const got = await readAll(b);
    await writer;
    expect(sha(got)).toBe(sha(data));
    const seqs = log
      .filter((e) => e.dir === 'ab' && e.f.op === ChannelOp.DATA)
      .map((e) => (e.f as { seq: number }).seq);
    expect(seqs).toEqual(seqs.map((_, i) => i));
    const acks = log
      .filter((e) => e.dir === 'ba' && e.f.op === ChannelOp.ACK)
      .map((e) => e.f as { seq: number; consumed: number });
    expect(acks.length).toBeGreaterThan(5);
    for (let i = 1; i < acks.length; i++) expect(acks[i]!.consumed).toBeGreaterThan(acks[i - 1]!.consumed);
    expect(violations).toEqual([]);
    expect(a.stats().maxInFlight).toBeLessThanOrEqual(16384);
  });

  it('a reader that never reads holds the writer at the window; reading releases it', async () => {
    const { a, b, violations } = pair({ windowB: 32768, maxChunk: 8192 });
    await a.opened();
    let done = false;
    const w = a.write(randomBytes(1 << 20)).then(() => (done = true));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    expect(a.stats().inFlight).toBe(32768);
    expect(b.stats().queuedBytes).toBe(32768);
    expect(a.stats().pendingWrites).toBe(1);
    const end = w.then(() => a.end());
    const got = await readAll(b);
    await end;
    expect(got.byteLength).toBe(1 << 20);
    expect(violations).toEqual([]);
  });

  it('16 MiB through a slow reader: SHA-256 matches and in-flight never exceeds the window', async () => {
    const window = 128 * 1024;
    const { a, b, violations } = pair({ windowB: window, maxChunk: 32 * 1024 });
    const data = randomBytes(16 << 20, 7);
    await a.opened();
    let maxQueued = 0;
    b.onReadable(() => (maxQueued = Math.max(maxQueued, b.stats().queuedBytes)));
    const writer = a.write(data).then(() => a.end());
    const got = await readAll(b, true);
    await writer;
    expect(sha(got)).toBe(sha(data));
    expect(a.stats().maxInFlight).toBeLessThanOrEqual(window);
    expect(a.stats().maxInFlight).toBe(window); // the writer did fill the window
    expect(maxQueued).toBeLessThanOrEqual(window);
    expect(violations).toEqual([]);
  });

  it('half-close: each direction ends on its own, then the channel is closed', async () => {
    const { a, b } = pair();
    await a.opened();
    await a.write(Buffer.from('ping'));
    await a.end();
    expect(a.state).toBe('half-closed-local');
    expect(Buffer.from(await readAll(b)).toString()).toBe('ping');
    expect(b.state).toBe('half-closed-remote');
    await expect(a.write(Buffer.from('x'))).rejects.toThrow(/write after end/);
    await b.write(Buffer.from('pong'));
    await b.end({ exit_code: 0 });
    expect(b.state).toBe('closed');
    expect(Buffer.from(await readAll(a)).toString()).toBe('pong');
    expect(a.state).toBe('closed');
    expect(a.trailer).toEqual({ exit_code: 0 });
  });

  it('reset: the peer learns the code and reason; pending reads and writes fail', async () => {
    const { a, b } = pair({ windowB: 1024 });
    await a.opened();
    const pendingWrite = a.write(randomBytes(10_000));
    const pendingRead = a.read();
    await until(() => b.stats().queuedBytes === 1024);
    b.reset(aipError('FILE_PATH_ESCAPE', { path: '../x' }));
    await expect(pendingWrite).rejects.toMatchObject({ code: 7020 });
    await expect(pendingRead).rejects.toMatchObject({
      code: 7020,
      message: "Path '../x' escapes the file root",
    });
    expect(a.state).toBe('reset');
    expect(b.state).toBe('reset');
    expect(a.error?.kind).toBe('FILE_PATH_ESCAPE');
  });

  it('REJECT fails opened() with the wire error', async () => {
    const frames: Uint8Array[] = [];
    const a = new ChannelEndpoint({ channel: 3, send: (f) => frames.push(f) > 0, initialState: 'opening' });
    const p = a.opened();
    a.handleFrame({ op: ChannelOp.REJECT, channel: 3, code: 7002, reason: 'nope' });
    await expect(p).rejects.toMatchObject({ code: 7002, kind: 'CHANNEL_NOT_AUTHORIZED', message: 'nope' });
  });

  it('data beyond the advertised window resets the channel (7005), bad seq too (7006)', () => {
    const out: ChannelFrame[] = [];
    const send = (f: Uint8Array): boolean => {
      const d = decodeChannelFrame(f);
      if (d.ok) out.push(d.value);
      return true;
    };
    const r = new ChannelEndpoint({
      channel: 1,
      send,
      receiveWindow: 10,
      initialState: 'open',
      sendWindow: 10,
    });
    r.handleFrame(decodeData(encodeData(1, 0, new Uint8Array(6))));
    expect(r.state).toBe('open');
    r.handleFrame(decodeData(encodeData(1, 1, new Uint8Array(5))));
    expect(r.state).toBe('reset');
    expect(out.at(-1)).toMatchObject({ op: ChannelOp.RESET, code: 7005 });
    const s = new ChannelEndpoint({
      channel: 1,
      send,
      receiveWindow: 10,
      initialState: 'open',
      sendWindow: 10,
    });
    s.handleFrame(decodeData(encodeData(1, 1, new Uint8Array(1))));
    expect(s.state).toBe('reset');
    expect(out.at(-1)).toMatchObject({ op: ChannelOp.RESET, code: 7006 });
  });
});

function decodeData(b: Uint8Array): ChannelFrame {
  const d = decodeChannelFrame(b);
  if (!d.ok) throw d.error;
  return d.value;
}
