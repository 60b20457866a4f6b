/**
 * The SSE stream on its own (fake source and sink) and through the in-memory transport's `injectStream`: the
 * gap-free replay-then-live algorithm under racing commits, backpressure and its budget, heartbeats, and
 * releasing everything on close.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  sseSettings,
  SSE_HEARTBEAT_MS,
  SSE_MAX_BUFFERED_BYTES,
  SseStream,
  type SseSource,
} from '../../src/http/routes/sessions-sse.js';
import { silentLogger } from '../../src/logger.js';
import { EventFeed } from '../../src/records/event-feed.js';
import type { EventPage, SessionEvent } from '../../src/state/session-store.js';
import { InjectedStream } from '../../src/transport/memory.js';
import { startMemoryServer, TEST_KEY, type MemoryHarness } from '../inproc/harness.js';

const ev = (id: number, session_id = 's'): SessionEvent => ({
  id,
  session_id,
  type: 'session.updated',
  at: '2025-01-01T00:00:00.000Z',
  data: { n: id },
});

/** A log plus a feed, with page reads that the test releases by hand (to interleave commits with the replay). */
class FakeSource implements SseSource {
  readonly feed = new EventFeed();
  readonly log: SessionEvent[] = [];
  readonly pending: (() => void)[] = [];
  holdPages = false;
  pageCalls = 0;

  commit(e: SessionEvent, publish = true): void {
    this.log.push(e);
    if (publish) this.feed.publish(e);
  }
  subscribe(l: (e: SessionEvent) => void): () => void {
    return this.feed.subscribe(l);
  }
  page(after: number, limit: number): Promise<EventPage> {
    this.pageCalls++;
    const read = () => ({ events: this.log.filter((e) => e.id > after).slice(0, limit), cut: false });
    if (!this.holdPages) return Promise.resolve(read());
    // the read happens now; its answer arrives when released (commits in between are not in it)
    const snapshot = read();
    return new Promise((resolve) => this.pending.push(() => resolve(snapshot)));
  }
  matches(): boolean {
    return true;
  }
}

class FakeSink {
  readonly chunks: string[] = [];
  full = false;
  ended = false;
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    return !this.full;
  }
  end(): void {
    this.ended = true;
  }
  abort(): void {
    this.ended = true;
  }
  ids(): number[] {
    return this.chunks.flatMap((c) => (c.startsWith('id: ') ? [Number(c.slice(4, c.indexOf('\n')))] : []));
  }
}

const flush = () => new Promise((r) => setImmediate(r));
const opts = { heartbeatMs: 60_000, maxBufferedBytes: 1024 * 1024, replayPage: 2 };

describe('SseStream', () => {
  it('replays after the given id, then goes live: events committed during the replay come once, in order', async () => {
    const src = new FakeSource();
    for (let i = 1; i <= 5; i++) src.commit(ev(i));
    src.holdPages = true;
    const stream = new SseStream(src, 1, opts, silentLogger());
    const sink = new FakeSink();
    stream.open(sink);
    expect(sink.chunks[0]).toBe(': connected\n\n');
    // page 1 (after 1) is read as [2,3]; then 6 commits and is heard (buffered) before the page arrives
    src.commit(ev(6));
    src.pending.shift()!();
    await flush();
    // page 2 (after 3) is read as [4,5]; 7 commits and is heard
    src.commit(ev(7));
    src.pending.shift()!();
    await flush();
    // page 3 (after 5) is read as [6,7]: also in the buffer; 8 commits, not heard yet (its publish is late)
    src.commit(ev(8), false);
    src.pending.shift()!();
    await flush();
    // page 4 (after 7) is [8], a short page: the replay ends, the buffer [6,7] is skipped (already sent)
    src.pending.shift()!();
    await flush();
    expect(src.pending).toHaveLength(0);
    expect(sink.ids()).toEqual([2, 3, 4, 5, 6, 7, 8]);
    src.feed.publish(ev(8)); // already sent from the log: skipped
    src.commit(ev(9)); // live
    expect(sink.ids()).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    expect(stream.lastEventId).toBe(9);
    stream.close();
    expect(src.feed.size).toBe(0);
  });

  it('queues while the sink is backed up, drains in order, and closes past its budget', async () => {
    const src = new FakeSource();
    const stream = new SseStream(src, 0, { ...opts, maxBufferedBytes: 2_000 }, silentLogger());
    const sink = new FakeSink();
    stream.open(sink);
    await flush();
    sink.full = true;
    src.commit(ev(1)); // written, reports backpressure
    src.commit(ev(2)); // queued
    src.commit(ev(3));
    expect(sink.ids()).toEqual([1]);
    expect(stream.bufferedBytes).toBeGreaterThan(0);
    sink.full = false;
    stream.drain();
    expect(sink.ids()).toEqual([1, 2, 3]);
    expect(stream.bufferedBytes).toBe(0);
    sink.full = true;
    src.commit(ev(4));
    for (let i = 5; i < 100 && !sink.ended; i++) src.commit(ev(i));
    expect(sink.ended).toBe(true); // the transport then calls close()
    stream.close();
    expect(stream.bufferedBytes).toBe(0);
    expect(src.feed.size).toBe(0);
  });

  it('the replay waits for the sink to drain before each event', async () => {
    const src = new FakeSource();
    for (let i = 1; i <= 6; i++) src.commit(ev(i));
    const stream = new SseStream(src, 0, { ...opts, maxBufferedBytes: 1 }, silentLogger());
    const sink = new FakeSink();
    sink.full = true;
    stream.open(sink); // ': connected' backs it up
    await flush();
    expect(sink.ids()).toEqual([]);
    for (let i = 1; i <= 6; i++) {
      stream.drain();
      await flush();
      expect(sink.ids()).toHaveLength(i);
    }
    expect(sink.ended).toBe(false); // never more than one event waiting: the 1-byte budget was never passed
    stream.close();
  });

  it('sends keepalive comments, not while backed up, and stops them on close', async () => {
    const src = new FakeSource();
    const stream = new SseStream(src, 0, { ...opts, heartbeatMs: 10 }, silentLogger());
    const sink = new FakeSink();
    stream.open(sink);
    await new Promise((r) => setTimeout(r, 35));
    const beats = sink.chunks.filter((c) => c === ': keepalive\n\n').length;
    expect(beats).toBeGreaterThanOrEqual(2);
    sink.full = true;
    await new Promise((r) => setTimeout(r, 35));
    const whileFull = sink.chunks.filter((c) => c === ': keepalive\n\n').length;
    expect(whileFull).toBe(beats + 1); // the one that found it full
    stream.close();
    sink.full = false;
    await new Promise((r) => setTimeout(r, 30));
    expect(sink.chunks.filter((c) => c === ': keepalive\n\n').length).toBe(whileFull);
  });
});

describe('SSE through the in-memory transport (injectStream)', () => {
  let h: MemoryHarness;
  afterEach(async () => {
    Object.assign(sseSettings, { heartbeatMs: SSE_HEARTBEAT_MS, maxBufferedBytes: SSE_MAX_BUFFERED_BYTES });
    await h.close();
  });
  const headers = { 'x-api-key': TEST_KEY, accept: 'text/event-stream' };

  it('streams, stops reading (backpressure), resumes, and unsubscribes on abort', async () => {
    h = await startMemoryServer();
    const feed = h.server.sessions.feed;
    const before = feed.size;
    const s = await h.memory.injectStream({ method: 'GET', url: '/sessions/events', headers });
    if (!(s instanceof InjectedStream)) throw new Error(`not a stream: ${s.status} ${s.text}`);
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toBe('text/event-stream');
    expect(feed.size).toBe(before + 1);
    await h.api('POST', '/sessions', { body: { id: 'a', agent_id: 'x', session_type: 't' } });
    await s.until((t) => t.includes('event: session.created'));
    s.pause();
    await h.api('PATCH', '/sessions/a', { body: { status: 'paused' } });
    await h.api('PATCH', '/sessions/a', { body: { status: 'active' } });
    expect(s.text).not.toContain('session.updated');
    expect(s.heldBytes).toBeGreaterThan(0);
    s.resume();
    await s.until((t) => t.split('event: session.updated').length === 3);
    s.abort();
    expect(s.ended).toBe(true);
    expect(feed.size).toBe(before);
  });

  it('closes a paused reader past the budget; closing the server ends open streams', async () => {
    sseSettings.maxBufferedBytes = 4 * 1024;
    h = await startMemoryServer();
    const s = await h.memory.injectStream({ method: 'GET', url: '/sessions/events', headers });
    if (!(s instanceof InjectedStream)) throw new Error('not a stream');
    s.pause();
    for (let i = 0; i < 50 && !s.ended; i++)
      await h.api('POST', '/sessions', { body: { id: `s${i}`, agent_id: 'x', session_type: 't' } });
    expect(s.ended).toBe(true);
    const other = await h.memory.injectStream({ method: 'GET', url: '/sessions/s1/events', headers });
    if (!(other instanceof InjectedStream)) throw new Error('not a stream');
    await other.until((t) => t.includes('id: '));
    await h.close();
    expect(other.ended).toBe(true);
  });

  it('inject() of a streamed route answers the head and what was written at once', async () => {
    h = await startMemoryServer();
    const r = await h.memory.inject({ method: 'GET', url: '/sessions/events', headers });
    expect(r.status).toBe(200);
    expect(r.text).toBe(': connected\n\n');
    expect(h.server.sessions.feed.size).toBe(0);
    const json = await h.memory.injectStream({
      method: 'GET',
      url: '/sessions/events',
      headers: { 'x-api-key': TEST_KEY },
    });
    expect(json).not.toBeInstanceOf(InjectedStream);
    expect((json as { json: unknown }).json).toEqual([]);
  });
});
