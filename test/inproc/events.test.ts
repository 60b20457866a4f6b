/** The lifecycle event stream (src/state/events.ts) for one task, end to end, in-process. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../src/state/events.js';
import { planRequest, startMemoryServer, waitFor, type MemoryHarness } from './harness.js';

describe('lifecycle events in-process', () => {
  let h: MemoryHarness;
  beforeEach(async () => {
    h = await startMemoryServer();
  });
  afterEach(async () => {
    await h.close();
  });

  it('announces registration, session creation, status, commands, results, the end, and departures, in order', async () => {
    const events: LifecycleEvent[] = [];
    h.server.events.onAny((e) => events.push(e));
    const typed: string[] = [];
    h.server.events.on('session.status', (e) => typed.push(`${e.sessionId}:${e.state}`));

    const d = await h.device('dev-1', { platform: 'windows' });
    const k = await h.constellation('k@dev-1', 'dev-1', 'msgpack');
    d.autoAnswer();
    k.send({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      target_id: 'dev-1',
      request: planRequest(2),
      session_id: 'k@ev',
      task_name: 'ev',
    });
    await k.next((m) => m.type === 'task_end');
    d.close();
    k.terminate();
    await waitFor(() => events.filter((e) => e.type === 'client.gone').length === 2);

    // store writes (timed for the metrics) interleave with the rest wherever a commit lands
    const lifecycle = events.filter((e) => e.type !== 'store.write');
    expect(events.some((e) => e.type === 'store.write')).toBe(true);
    expect(lifecycle.map((e) => e.type)).toEqual([
      'client.registered',
      'client.registered',
      'session.created',
      'session.status',
      'command.sent',
      'results.received',
      'command.sent',
      'results.received',
      'session.status',
      'session.ended',
      'client.gone',
      'client.gone',
    ]);
    const [regD, regK, created, running, sent1, got1, sent2, got2, completed, ended, goneD, goneK] =
      lifecycle;
    const connIds = new Set([regD, regK].map((e) => (e as { connId: string }).connId));
    expect(connIds.size).toBe(2);
    expect(regD).toMatchObject({
      clientId: 'dev-1',
      clientType: 'device',
      platform: 'windows',
      codec: 'json',
    });
    expect(regK).toMatchObject({ clientId: 'k@dev-1', clientType: 'constellation', codec: 'msgpack' });
    expect(created).toEqual({
      type: 'session.created',
      sessionId: 'k@ev',
      taskName: 'ev',
      ownerId: 'k@dev-1',
      executorId: 'dev-1',
      platform: 'windows',
      mode: 'service',
    });
    expect(running).toMatchObject({ sessionId: 'k@ev', state: 'running' });
    expect(completed).toMatchObject({ sessionId: 'k@ev', state: 'completed' });
    expect(typed).toEqual(['k@ev:running', 'k@ev:completed']);

    // command.sent / results.received carry exactly what crossed the wire.
    const commands = d.ofType('command');
    expect(commands).toHaveLength(2);
    for (const [i, [sent, got]] of [
      [sent1, got1],
      [sent2, got2],
    ].entries()) {
      const cmd = commands[i]!;
      expect(sent).toEqual({
        type: 'command.sent',
        sessionId: 'k@ev',
        executorId: 'dev-1',
        responseId: cmd.response_id,
        callIds: [cmd.actions![0]!.call_id],
        tools: ['noop'],
      });
      expect(got).toEqual({
        type: 'results.received',
        sessionId: 'k@ev',
        executorId: 'dev-1',
        responseId: cmd.response_id,
        statuses: ['success'],
      });
    }
    expect(ended).toEqual({
      type: 'session.ended',
      sessionId: 'k@ev',
      taskName: 'ev',
      status: 'completed',
      error: null,
    });
    expect(goneD).toEqual({
      type: 'client.gone',
      clientId: 'dev-1',
      clientType: 'device',
      reason: 'disconnected',
      code: 1000,
    });
    expect(goneK).toEqual({
      type: 'client.gone',
      clientId: 'k@dev-1',
      clientType: 'constellation',
      reason: 'disconnected',
      code: 1006,
    });
  });

  it('reports a cancelled session as session.ended failed with the catalogue text', async () => {
    const ended: { status: string; error: string | null }[] = [];
    h.server.events.on('session.ended', (e) => ended.push({ status: e.status, error: e.error }));
    const d = await h.device('dev-1');
    d.send({ type: 'task', status: 'continue', request: planRequest(2), session_id: 's-cancel' });
    await d.next((m) => m.type === 'command');
    expect((await h.api('DELETE', '/api/sessions/s-cancel')).status).toBe(200);
    await d.next((m) => m.type === 'task_end');
    expect(ended).toEqual([{ status: 'failed', error: 'Task was cancelled by an API request' }]);
  });

  it('keeps serving when a subscriber throws, and stops calling an unsubscribed listener', async () => {
    h.server.events.on('session.created', () => {
      throw new Error('subscriber bug');
    });
    const seen: string[] = [];
    const off = h.server.events.on('client.registered', (e) => seen.push(e.clientId));
    const d = await h.device('dev-1');
    d.autoAnswer();
    d.send({ type: 'task', status: 'continue', request: planRequest(1) });
    expect(await d.next((m) => m.type === 'task_end')).toMatchObject({ status: 'completed' });
    off();
    await h.device('dev-2');
    expect(seen).toEqual(['dev-1']);
  });
});
