/**
 * SsmSession and SsmSocket against fakes (test/ssm/ssm-fakes.ts): the transitions a real socket makes hard to
 * time (a close handler run synchronously inside close(), as uWS does), and the bridges' races with the device.
 */
import { describe, expect, it } from 'vitest';
import { aipError } from '../../protocol/index.js';
import { silentLogger } from '../../src/logger.js';
import { PayloadType } from '../../src/ssm/codec.js';
import { SsmSession } from '../../src/ssm/ssm-session.js';
import { SsmSocket, type SsmAttacher } from '../../src/ssm/ssm-socket.js';
import type { SsmOptions } from '../../src/ssm/session-plan.js';
import type { LiveRemote } from '../../src/remote/remote-sessions.js';
import {
  FakeConn,
  fakeEndpoint,
  fakeLive,
  fakeRemote,
  HANDSHAKE_OK,
  options,
  PluginFrames,
  waitFor,
  type FakeEndpoint,
  type FakeRemote,
} from './ssm-fakes.js';

const log = silentLogger();
const text = (s: string): Uint8Array => Buffer.from(s);

/** A session past its handshake on `conn` (HandshakeRequest #0 and HandshakeComplete #1 acked). */
function openSession(
  live: LiveRemote,
  fr: FakeRemote,
  opts: Partial<SsmOptions> = {},
): { s: SsmSession; conn: FakeConn; p: PluginFrames } {
  const s = new SsmSession(live, fr.remote, 'client-A', options(opts), log, () => undefined);
  const conn = new FakeConn();
  const p = new PluginFrames();
  s.attach(conn);
  s.message(p.ack(0));
  s.message(p.input(PayloadType.HANDSHAKE_RESPONSE, HANDSHAKE_OK));
  s.message(p.ack(1));
  return { s, conn, p };
}

/** A shell session whose PTY opened on `ep` (the plugin's first Size opens it). */
async function openShell(
  fr: FakeRemote,
  ep: FakeEndpoint,
  opts: Partial<SsmOptions> = {},
): Promise<{ s: SsmSession; conn: FakeConn; p: PluginFrames }> {
  const o = openSession(fakeLive('Standard_Stream'), fr, opts);
  o.s.message(o.p.input(PayloadType.SIZE, JSON.stringify({ cols: 80, rows: 24 })));
  await waitFor(() => ep.got.length > 0 || o.s.stats().pendingInput === 0, 'the PTY to open');
  await new Promise((r) => setImmediate(r));
  return o;
}

const openMessage = (clientId: string): string =>
  JSON.stringify({ MessageSchemaVersion: '1.0', RequestId: 'r', TokenValue: 't', ClientId: clientId });

describe('SsmSocket', () => {
  it('turns a throw from the session into a failure instead of letting it reach the transport', async () => {
    const failed: string[] = [];
    const fr = fakeRemote();
    const live = fakeLive('Standard_Stream');
    const session = {
      attach: () => undefined,
      detach: () => undefined,
      message: () => {
        throw aipError('REMOTE_DEVICE_OFFLINE', { id: 'gone-dev' });
      },
      fail: (err: { message: string }) => void failed.push(err.message),
    } as unknown as SsmSession;
    const endpoint: SsmAttacher = {
      remote: { ...fr.remote, get: () => Promise.resolve(live) } as unknown as SsmAttacher['remote'],
      tokenWaitMs: 10_000,
      sessionFor: () => session,
    };
    const conn = new FakeConn();
    const h = new SsmSocket(conn, 'sess-1', endpoint, () => undefined, log);
    conn.handler = h;
    h.message(openMessage('client-A'), false);
    await new Promise((r) => setImmediate(r));
    expect(() => h.message(new PluginFrames().ack(0), true)).not.toThrow();
    expect(failed).toEqual([expect.stringMatching(/gone-dev/)]);
    h.closed();
  });
});

describe('resume', () => {
  it('a resume while closing, the old socket still open and closing synchronously, finishes on the new socket', async () => {
    const fr = fakeRemote();
    const live = fakeLive('Standard_Stream');
    let session: SsmSession | null = null;
    const endpoint: SsmAttacher = {
      remote: { ...fr.remote, get: () => Promise.resolve(live) } as unknown as SsmAttacher['remote'],
      tokenWaitMs: 10_000,
      sessionFor: (l, cid) =>
        (session ??= new SsmSession(l, fr.remote, cid, options(), log, () => undefined)),
    };
    const sock = (c: FakeConn): SsmSocket => {
      const h = new SsmSocket(c, 'sess-1', endpoint, () => undefined, log);
      c.handler = h;
      return h;
    };
    const p = new PluginFrames();
    const c1 = new FakeConn();
    const h1 = sock(c1);
    h1.message(openMessage('client-A'), false);
    await waitFor(() => session !== null, 'the session');
    h1.message(p.ack(0), true);
    h1.message(p.input(PayloadType.HANDSHAKE_RESPONSE, HANDSHAKE_OK), true);
    h1.message(p.ack(1), true);
    const s = session!;
    s.output(text('last words')); // #2, never acked on c1
    let thenRan = false;
    s.finish('', () => (thenRan = true));
    expect(s.state).toBe('closing');
    const c2 = new FakeConn();
    const h2 = sock(c2);
    h2.message(openMessage('client-A'), false);
    await waitFor(() => c1.closed && c2.outputs(2) > 0, 'the last output on the new socket');
    expect(s.state).toBe('closing');
    h2.message(p.ack(2), true);
    expect(s.state).toBe('closed');
    expect(c2.channelClosed()).toBe('');
    expect(c2.closed).toBe(true);
    expect(thenRan).toBe(true);
  });

  it('a socket attached to a closed session gets channel_closed and is closed', () => {
    const fr = fakeRemote();
    const { s } = openSession(fakeLive('Standard_Stream'), fr);
    s.fail(aipError('SSM_TERMINATED'));
    expect(s.state).toBe('closed');
    const late = new FakeConn();
    s.attach(late);
    expect(late.closed).toBe(true);
    expect(late.channelClosed()).toMatch(/ended|closed|terminated/i);
  });

  it('frames sent again on a new socket whose ack was lost are kept, not failed, and go with a later ack', async () => {
    const fr = fakeRemote();
    const { s, conn, p } = openSession(fakeLive('Standard_Stream'), fr, {
      maxResendAttempts: 4,
      resendIntervalMs: 5,
      resumeAckWaitMs: 50,
    });
    s.output(text('$ ')); // #2: the plugin got it, its ack died with the socket
    s.detach(conn);
    const c2 = new FakeConn();
    s.attach(c2); // the plugin already expects #3: #2 sent again is a duplicate it drops unacked
    await new Promise((r) => setTimeout(r, 200)); // past resumeAckWaitMs, and many scans
    expect(s.state).not.toBe('closed');
    expect(c2.channelClosed()).toBeNull();
    expect(s.stats().unackedMessages).toBe(1); // kept (parked), never failed
    s.output(text('ls')); // #3
    s.message(p.ack(3)); // the plugin acks what it lacked: #2, before it on the socket, arrived too
    expect(s.stats().unackedMessages).toBe(0);
    s.fail(aipError('SSM_TERMINATED'));
  });
});

describe('handshake', () => {
  /** A new shell session on a socket, its HandshakeRequest (out#0) sent. */
  const attached = (): { s: SsmSession; conn: FakeConn } => {
    const s = new SsmSession(
      fakeLive('Standard_Stream'),
      fakeRemote().remote,
      'client-A',
      options({}),
      log,
      () => undefined,
    );
    const conn = new FakeConn();
    s.attach(conn);
    return { s, conn };
  };

  it('refuses input ahead of the handshake response with a reason that says so, not a timeout', () => {
    const { s, conn } = attached();
    const p = new PluginFrames();
    s.message(p.ack(0));
    s.message(p.input(PayloadType.OUTPUT, 'ls\n')); // in#0: data, not the response
    expect(s.state).toBe('closed');
    expect(conn.channelClosed()).toBe(
      'The handshake failed: the client sent input of payload type 1 at sequence 0, before its handshake response',
    );
    expect(conn.closed).toBe(true);
  });

  it('still takes a handshake response that arrives after a later input (kept until it can be delivered)', () => {
    const { s } = attached();
    const early = new PluginFrames();
    const response = early.input(PayloadType.HANDSHAKE_RESPONSE, HANDSHAKE_OK); // in#0
    const size = early.input(PayloadType.SIZE, JSON.stringify({ cols: 80, rows: 24 })); // in#1
    s.message(size); // out of order: kept
    s.message(response);
    expect(s.state).toBe('open');
    s.fail(aipError('SSM_TERMINATED'));
  });
});

describe('ending the session with its data channel', () => {
  it('a plugin that drops while the shell is closing still ends the session', () => {
    const fr = fakeRemote();
    const { s, conn } = openSession(fakeLive('Standard_Stream'), fr);
    s.output(text('bye'));
    let thenRan = false;
    s.finish('', () => (thenRan = true));
    s.detach(conn);
    expect(s.state).toBe('closed');
    expect(thenRan).toBe(true);
  });

  it('a shell whose plugin stops acknowledging ends failed', async () => {
    const fr = fakeRemote({ openChannel: () => Promise.resolve(ep) });
    const ep = fakeEndpoint();
    const { s, conn } = await openShell(fr, ep, { maxResendAttempts: 3, resendIntervalMs: 5 });
    s.output(text('never acked'));
    await waitFor(() => s.state === 'closed', 'the session to give up');
    expect(conn.channelClosed()).toMatch(/unresponsive|did not acknowledge|attempts/i);
    expect(fr.ended).toEqual([expect.objectContaining({ id: 'sess-1', status: 'failed' })]);
    expect(ep.resetCalled).toBe(true);
  });

  it('a failure before the shell opened leaves the session to the client', () => {
    const fr = fakeRemote();
    const { s } = openSession(fakeLive('Standard_Stream'), fr);
    s.fail(aipError('SSM_TERMINATED'));
    expect(fr.ended).toEqual([]);
  });
});

describe('shell bridge', () => {
  it('applies a Size that arrived while the PTY was opening once it opens', async () => {
    const ep = fakeEndpoint();
    let openedWith: unknown = null;
    let open: (e: FakeEndpoint) => void = () => undefined;
    const fr = fakeRemote({ openChannel: () => new Promise((r) => (open = r)) });
    const { s, p } = openSession(
      fakeLive('Standard_Stream', {}, (size) => (openedWith = size)),
      fr,
    );
    s.message(p.input(PayloadType.SIZE, JSON.stringify({ cols: 80, rows: 24 })));
    await waitFor(() => openedWith !== null, 'the PTY to be requested');
    s.message(p.input(PayloadType.SIZE, JSON.stringify({ cols: 200, rows: 60 })));
    open(ep);
    await waitFor(() => ep.got.length > 0, 'the resize');
    expect(openedWith).toEqual({ rows: 24, cols: 80 });
    expect(Buffer.concat(ep.got).includes(Buffer.from('60'))).toBe(true);
    s.fail(aipError('SSM_TERMINATED'));
  });
});

describe('shell bridge input bound', () => {
  it('Size messages count against the input budget once the PTY is open: a flood stalls at it', async () => {
    const ep = fakeEndpoint();
    (ep as unknown as { write: (b: Uint8Array) => Promise<void> }).write = (b) => {
      ep.got.push(b);
      return new Promise<void>(() => undefined); // the device grants no credit
    };
    const fr = fakeRemote({ openChannel: () => Promise.resolve(ep) });
    const max = 1_000;
    const { s, p } = await openShell(fr, ep, { inputMaxBytes: max });
    for (let i = 0; i < 10_000; i++)
      s.message(p.input(PayloadType.SIZE, JSON.stringify({ cols: 80 + (i % 50), rows: 24 })));
    // Accepted until the budget is reached (the last one may go over by its own size), the rest wait unacked.
    expect(s.stats().pendingInput).toBeLessThan(max + 100);
    expect(ep.got.length).toBeLessThan(200);
    s.fail(aipError('SSM_TERMINATED'));
  });
});

describe('port bridge, the device side reset', () => {
  const portOn = async (
    params: Record<string, string[]>,
  ): Promise<{ s: SsmSession; conn: FakeConn; p: PluginFrames; ep: FakeEndpoint; fr: FakeRemote }> => {
    const ep = fakeEndpoint();
    const fr = fakeRemote({ openChannel: () => Promise.resolve(ep) });
    const o = openSession(fakeLive('Port', params), fr);
    await waitFor(() => o.s.stats().state === 'open', 'the session to open');
    await new Promise((r) => setImmediate(r));
    return { ...o, ep, fr };
  };

  it('stdio: a reset reaches the plugin as channel_closed with its reason, not as a clean end', async () => {
    const { s, conn, ep } = await portOn({ portNumber: ['80'], forwardingType: ['Stdio'] });
    ep.peerReset(aipError('CHANNEL_PEER_GONE'));
    expect(s.state).toBe('closed');
    expect(conn.channelClosed()).toBe("The channel's peer disconnected");
  });

  it('basic: the device gone fails the session; its input is no longer acked and dropped', async () => {
    const { s, conn, p, ep } = await portOn({ portNumber: ['80'], ssmAgentVersion: ['3.0.0.0'] });
    ep.peerReset(aipError('CHANNEL_PEER_GONE'));
    expect(s.state).toBe('closed');
    expect(conn.channelClosed()).toBe("The channel's peer disconnected");
    const acksBefore = conn.messages().filter((m) => m.messageType === 'acknowledge').length;
    s.message(p.input(PayloadType.OUTPUT, 'lost?'));
    expect(conn.messages().filter((m) => m.messageType === 'acknowledge')).toHaveLength(acksBefore);
  });

  it('basic: a service that reset its connection is one connection closed; the session stays for the next', async () => {
    const { s, conn, ep } = await portOn({ portNumber: ['80'], ssmAgentVersion: ['3.0.0.0'] });
    ep.peerReset(aipError('CHANNEL_CANCELLED'));
    expect(s.state).toBe('open');
    expect(conn.channelClosed()).toBeNull();
    s.fail(aipError('SSM_TERMINATED'));
  });
});

describe('port bridge, basic mode', () => {
  it('repeated DisconnectToPort while a connection opens: one device connection, the others reset', async () => {
    const eps: FakeEndpoint[] = [];
    const pending: (() => void)[] = [];
    const fr = fakeRemote({
      openChannel: () =>
        new Promise((r) => {
          const ep = fakeEndpoint();
          eps.push(ep);
          pending.push(() => r(ep));
        }),
    });
    const { s, p } = openSession(fakeLive('Port', { ssmAgentVersion: ['3.0.0.0'] }), fr);
    await waitFor(() => pending.length === 1, 'the first connection');
    pending.shift()!();
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 4; i++) s.message(p.flag(1));
    await new Promise((r) => setImmediate(r));
    while (pending.length > 0) {
      pending.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    s.message(p.input(PayloadType.OUTPUT, 'hello'));
    await waitFor(() => eps.some((e) => e.got.length > 0), 'the data to reach a connection');
    const live = eps.filter((e) => !e.resetCalled);
    expect(live).toHaveLength(1);
    expect(Buffer.concat(live[0]!.got).toString()).toBe('hello');
    s.fail(aipError('SSM_TERMINATED'));
  });
});

describe('resend scan', () => {
  it('runs no timer while nothing is waiting for an ack', async () => {
    const fr = fakeRemote();
    const { s, conn, p } = openSession(fakeLive('Standard_Stream'), fr, { resendIntervalMs: 5 });
    const timer = (): unknown => (s as unknown as { resendTimer: unknown }).resendTimer;
    await waitFor(() => timer() === null, 'the scan to stop after the handshake');
    s.output(text('x')); // #2
    expect(timer()).not.toBeNull();
    await waitFor(() => conn.outputs(2) > 1, 'a resend');
    s.message(p.ack(2));
    await waitFor(() => timer() === null, 'the scan to stop');
    s.fail(aipError('SSM_TERMINATED'));
  });
});
