/** The SSM reliability layer as pure state: RTO maths, selective acks, resends, in-order delivery, caps. */
import { describe, expect, it } from 'vitest';
import type { ClientMessage } from '../../src/ssm/codec.js';
import { Reliability, type FrameSink, type ReliabilityLimits } from '../../src/ssm/reliability.js';
import { RtoEstimator } from '../../src/ssm/rto.js';
import {
  handshakeRequestPayload,
  parseHandshakeResponse,
  portMode,
  smuxKeepalive,
  versionGreater,
} from '../../src/ssm/handshake.js';

const LIMITS: ReliabilityLimits = {
  outgoingWindow: 4,
  incomingBufferMessages: 3,
  incomingBufferBytes: 1000,
  maxResendAttempts: 3,
  resumeAckWaitMs: 1_000,
};

function sink(): FrameSink & { sent: string[]; open: boolean } {
  const s = {
    sent: [] as string[],
    open: true,
    ready: () => s.open,
    send: (f: Uint8Array) => void s.sent.push(Buffer.from(f).toString()),
  };
  return s;
}

const msg = (seq: number, payload = `m${seq}`): ClientMessage => ({
  messageType: 'input_stream_data',
  schemaVersion: 1,
  createdDate: 1n,
  sequenceNumber: BigInt(seq),
  flags: 0n,
  messageId: '00000000-0000-0000-0000-000000000000',
  payloadType: 1,
  payload: Buffer.from(payload),
});

describe('RTO estimate', () => {
  it('starts at RTT 100 ms, RTTVAR 0, RTO 200 ms; a 140 ms sample gives 105 / 10 / 145', () => {
    const r = new RtoEstimator();
    expect([r.rttMs, r.rttVarMs, r.rtoMs]).toEqual([100, 0, 200]);
    r.sample(140);
    expect([r.rttMs, r.rttVarMs, r.rtoMs]).toEqual([105, 10, 145]);
  });

  it('adds at least the 10 ms clock granularity and caps at 1 s', () => {
    const r = new RtoEstimator();
    for (let i = 0; i < 200; i++) r.sample(100);
    expect(r.rtoMs).toBeCloseTo(110, 0);
    for (let i = 0; i < 50; i++) r.sample(60_000);
    expect(r.rtoMs).toBe(1000);
  });
});

describe('outgoing', () => {
  it('numbers from 0, sends in order, removes any acked entry (selective), and samples the RTT', () => {
    const r = new Reliability(LIMITS);
    const s = sink();
    for (let i = 0; i < 3; i++) r.enqueue((seq) => Buffer.from(`f${seq}`));
    r.flush(s, 1000);
    expect(s.sent).toEqual(['f0', 'f1', 'f2']);
    expect(r.acknowledge(1, 1140)).toBe(true);
    expect(r.acknowledge(1, 1140)).toBe(false); // unknown now: ignored
    expect(r.unacked.messages).toBe(2);
    expect(r.rto.rtoMs).toBe(145);
  });

  it('caps the window: full at outgoingWindow messages', () => {
    const r = new Reliability(LIMITS);
    for (let i = 0; i < 4; i++) r.enqueue((seq) => Buffer.from(`f${seq}`));
    expect(r.windowFull).toBe(true);
    r.acknowledge(2, 0);
    expect(r.windowFull).toBe(false);
  });

  it('holds frames while the sink is not ready and sends them in order later', () => {
    const r = new Reliability(LIMITS);
    const s = sink();
    s.open = false;
    r.enqueue(() => Buffer.from('a'));
    r.enqueue(() => Buffer.from('b'));
    r.flush(s, 0);
    expect(s.sent).toEqual([]);
    s.open = true;
    r.flush(s, 0);
    expect(s.sent).toEqual(['a', 'b']);
  });

  it('resends what waited longer than the RTO, and reports a message that reached the attempt cap', () => {
    const r = new Reliability(LIMITS);
    const s = sink();
    r.enqueue(() => Buffer.from('a'));
    r.flush(s, 0);
    expect(r.resendDue(s, 100)).toBeNull();
    expect(s.sent).toEqual(['a']);
    expect(r.resendDue(s, 200)).toBeNull();
    expect(r.resendDue(s, 400)).toBeNull();
    expect(s.sent).toEqual(['a', 'a', 'a']);
    expect(r.resendDue(s, 600)).toBe(0);
  });

  it('drops a message at the cap when a later one was acked (its ack was lost; the plugin never re-acks)', () => {
    const r = new Reliability(LIMITS);
    const s = sink();
    r.enqueue(() => Buffer.from('a'));
    r.enqueue(() => Buffer.from('b'));
    r.flush(s, 0);
    r.acknowledge(1, 10);
    for (const t of [200, 400]) r.resendDue(s, t);
    expect(r.resendDue(s, 600)).toBeNull();
    expect(r.unacked.messages).toBe(0);
  });

  it('resends only the oldest unacked message per scan: no flood of duplicates', () => {
    const r = new Reliability({ ...LIMITS, outgoingWindow: 100, maxResendAttempts: 1000 });
    const s = sink();
    for (let i = 0; i < 50; i++) r.enqueue((seq) => Buffer.from(`f${seq}`));
    r.flush(s, 0);
    const scans = 40;
    for (let i = 1; i <= scans; i++) expect(r.resendDue(s, i * 200)).toBeNull();
    const resends = s.sent.length - 50;
    expect(resends).toBe(scans);
    expect(new Set(s.sent.slice(50))).toEqual(new Set(['f0']));
    r.acknowledge(0, scans * 200);
    r.resendDue(s, scans * 200 + 200);
    expect(s.sent.at(-1)).toBe('f1'); // the next head goes once the first is acked
  });

  it('after a resume, a later ack clears every message sent again before it; nothing is resent on the socket', () => {
    const r = new Reliability({ ...LIMITS, outgoingWindow: 100, maxResendAttempts: 3000 });
    const s = sink();
    for (let i = 0; i < 50; i++) r.enqueue((seq) => Buffer.from(`f${seq}`));
    r.flush(s, 0); // all 50 reach the plugin; their acks die with the socket
    r.rewind();
    const s2 = sink();
    r.flush(s2, 10); // the plugin had f0..f48 (duplicates, never acked) but not f49
    expect(r.resendDue(s2, 300)).toBeNull();
    expect(s2.sent).toHaveLength(50); // nothing resent on the new socket: it delivers what it was given
    r.acknowledge(49, 320);
    expect(r.unacked.messages).toBe(0); // f0..f48 went before f49 on the socket: they arrived
    r.enqueue((seq) => Buffer.from(`f${seq}`));
    r.flush(s2, 330);
    expect(s2.sent.at(-1)).toBe('f50');
  });

  it('after a resume, parks unacked duplicates with no later ack: the window frees, they are kept, and go on a later ack', () => {
    const r = new Reliability({ ...LIMITS, outgoingWindow: 4, maxResendAttempts: 3000 });
    const s = sink();
    for (let i = 0; i < 4; i++) r.enqueue((seq) => Buffer.from(`f${seq}`));
    r.flush(s, 0);
    r.rewind();
    const s2 = sink();
    r.flush(s2, 10); // the plugin had all four: no acks will come for them
    expect(r.windowFull).toBe(true);
    expect(r.resendDue(s2, 1010)).toBeNull();
    expect(r.windowFull).toBe(false); // parked: no longer holding the window
    expect(r.unacked.messages).toBe(4); // but kept: a broken socket now would send them again
    expect(r.awaitingAcks).toBe(false); // and the scan has nothing to do for them
    r.enqueue((seq) => Buffer.from(`f${seq}`));
    r.flush(s2, 1020);
    expect(s2.sent.at(-1)).toBe('f4');
    r.rewind(); // a parked message goes again on the next socket
    const s3 = sink();
    r.flush(s3, 1030);
    expect(s3.sent).toEqual(['f0', 'f1', 'f2', 'f3', 'f4']);
    r.acknowledge(4, 1040); // the plugin lacked only f4: f0..f3, before it, arrived too
    expect(r.unacked.messages).toBe(0);
  });

  it('after a resume, output new to the socket is still resent and fails at the cap as before', () => {
    const r = new Reliability(LIMITS);
    const s = sink();
    r.enqueue(() => Buffer.from('a'));
    r.flush(s, 0);
    r.rewind();
    const s2 = sink();
    r.flush(s2, 10);
    r.enqueue(() => Buffer.from('b')); // first sent on the new socket
    r.flush(s2, 20);
    expect(r.resendDue(s2, 1100)).toBeNull(); // 'a' dropped as a duplicate; 'b' (attempt 2) goes again
    expect(s2.sent).toEqual(['a', 'b', 'b']);
    expect(r.resendDue(s2, 1400)).toBeNull();
    expect(r.resendDue(s2, 1700)).toBe(1);
  });

  it('rewinds on a new socket: everything unacked goes again, in order', () => {
    const r = new Reliability(LIMITS);
    const s = sink();
    for (let i = 0; i < 3; i++) r.enqueue((seq) => Buffer.from(`f${seq}`));
    r.flush(s, 0);
    r.acknowledge(1, 5);
    r.rewind();
    const s2 = sink();
    r.flush(s2, 10);
    expect(s2.sent).toEqual(['f0', 'f2']);
    expect(r.sequence.next).toBe(3);
  });
});

describe('incoming', () => {
  const yes = (): boolean => true;

  it('delivers the expected message, buffers later ones, then drains 2,3,4 but not 6', () => {
    const r = new Reliability({ ...LIMITS, incomingBufferMessages: 10 });
    expect(r.receive(0, msg(0), yes)).toMatchObject({ kind: 'deliver' });
    for (const n of [2, 3, 4, 6]) expect(r.receive(n, msg(n), yes)).toEqual({ kind: 'buffered' });
    const d = r.receive(1, msg(1), yes);
    expect(d.kind === 'deliver' && d.messages.map((m) => Number(m.sequenceNumber))).toEqual([1, 2, 3, 4]);
    expect(r.sequence.expected).toBe(5);
    expect(r.buffered.messages).toBe(1);
  });

  it('drops duplicates (never delivered twice)', () => {
    const r = new Reliability(LIMITS);
    r.receive(0, msg(0), yes);
    expect(r.receive(0, msg(0), yes)).toEqual({ kind: 'duplicate' });
    r.receive(2, msg(2), yes);
    expect(r.receive(2, msg(2), yes)).toEqual({ kind: 'duplicate' });
  });

  it('keeps the expected message while the caller cannot take it, and delivers it in order once it can', () => {
    const r = new Reliability(LIMITS);
    expect(r.receive(0, msg(0), () => false)).toEqual({ kind: 'buffered' });
    expect(r.receive(1, msg(1), () => false)).toEqual({ kind: 'buffered' });
    expect(r.sequence.expected).toBe(0);
    expect(r.ready(() => false)).toEqual([]);
    expect(r.ready(() => true).map((m) => Number(m.sequenceNumber))).toEqual([0, 1]);
    expect(r.sequence.expected).toBe(2);
    const full = new Reliability({ ...LIMITS, incomingBufferMessages: 0 });
    expect(full.receive(0, msg(0), () => false)).toEqual({ kind: 'refused', why: 'not-ready' });
  });

  it('caps the out-of-order buffer by count and by bytes', () => {
    const r = new Reliability(LIMITS);
    for (const n of [1, 2, 3]) expect(r.receive(n, msg(n), yes).kind).toBe('buffered');
    expect(r.receive(4, msg(4), yes)).toEqual({ kind: 'refused', why: 'buffer-full' });
    const b = new Reliability(LIMITS);
    expect(b.receive(1, msg(1, 'x'.repeat(900)), yes).kind).toBe('buffered');
    expect(b.receive(2, msg(2, 'x'.repeat(200)), yes)).toEqual({ kind: 'refused', why: 'buffer-full' });
  });
});

describe('handshake rules', () => {
  it('compares 4-part versions as the plugin does and picks the port mode', () => {
    expect(versionGreater('3.0.197.0', '3.0.196.0')).toBe(true);
    expect(versionGreater('3.0.196.0', '3.0.196.0')).toBe(false);
    expect(versionGreater('3.1', '3.0.196.0')).toBe(false);
    expect(portMode('3.3.40.0', 'LocalPortForwarding')).toBe('mux');
    expect(portMode('3.0.0.0', 'LocalPortForwarding')).toBe('basic');
    expect(portMode('3.3.40.0', 'Stdio')).toBe('stdio');
    expect(smuxKeepalive('3.3.40.0')).toBe(false);
    expect(smuxKeepalive('3.1.0.0')).toBe(true);
  });

  it('requests only the SessionType action, properties as strings; reads the response status', () => {
    const j = JSON.parse(
      Buffer.from(
        handshakeRequestPayload({
          agentVersion: '3.3.40.0',
          sessionType: 'Port',
          properties: { portNumber: '22' },
        }),
      ).toString(),
    ) as { RequestedClientActions: unknown[] };
    expect(j.RequestedClientActions).toEqual([
      {
        ActionType: 'SessionType',
        ActionParameters: { SessionType: 'Port', Properties: { portNumber: '22' } },
      },
    ]);
    const ok = { ProcessedClientActions: [{ ActionType: 'SessionType', ActionStatus: 1 }] };
    expect(parseHandshakeResponse(Buffer.from(JSON.stringify(ok)))).toEqual({ ok: true });
    const failed = {
      ProcessedClientActions: [{ ActionType: 'SessionType', ActionStatus: 2, Error: 'nope' }],
    };
    expect(parseHandshakeResponse(Buffer.from(JSON.stringify(failed)))).toMatchObject({ ok: false });
    expect(parseHandshakeResponse(Buffer.from('x'))).toMatchObject({ ok: false });
  });
});
