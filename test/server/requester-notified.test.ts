/**
 * `task.requester_notified` says whether the requester was sent the task's `task_end`. The end is recorded before
 * `task_end` goes out (whoever is told can read the result), with the flag set when the requester is connected at
 * that moment; a requester that leaves while the end is being committed was never told, and the record must say so.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemorySessionStore } from '../../src/state/memory-session-store.js';
import type { NewEvent, SessionChanges, UpdateResult } from '../../src/state/session-store.js';
import { until } from '../helpers/process.js';
import { constellationTask, startTestServer } from '../helpers/aip-server.js';
import { RawClient } from '../helpers/raw-client.js';

/** A memory store that runs `beforeEnd` (once) before it commits the write recording a task's end. */
class EndHookStore extends MemorySessionStore {
  beforeEnd: (() => Promise<void>) | null = null;

  override async update(
    id: string,
    version: number,
    changes: SessionChanges,
    event: NewEvent,
  ): Promise<UpdateResult | null> {
    const hook = event.type === 'task.ended' ? this.beforeEnd : null;
    if (hook) {
      this.beforeEnd = null;
      await hook();
    }
    return super.update(id, version, changes, event);
  }
}

type Server = Awaited<ReturnType<typeof startTestServer>>;

describe('task.requester_notified', () => {
  let server: Server | null = null;
  const clients: RawClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await server?.close();
    server = null;
  });

  /**
   * Runs a 2-step constellation task. While the end is being recorded the requester `stays`, `leaves`, or leaves and
   * `returns` on a new connection. Resolves the record's flag and whether the requester (the last connection of
   * its id) got `task_end`.
   */
  async function run(mode: 'stays' | 'leaves' | 'returns'): Promise<{ notified: boolean; endSeen: boolean }> {
    const store = new EndHookStore();
    server = await startTestServer({}, { sessions: store });
    const s = server;
    const device = await RawClient.connect(s.url, 'json');
    clients.push(device);
    await device.register('dev-1', { metadata: { platform: 'windows' } });
    device.autoAnswer();
    const connect = async (): Promise<RawClient> => {
      const c = await RawClient.connect(s.url, 'json');
      clients.push(c);
      await c.register('k@dev-1', { client_type: 'constellation', target_id: 'dev-1' });
      return c;
    };
    const first = await connect();
    let requester = first;
    if (mode !== 'stays')
      store.beforeEnd = async () => {
        await first.close();
        await until(() => s.registry.get('k@dev-1') === undefined, 'the server to drop the requester');
        if (mode === 'returns') requester = await connect();
      };
    first.send(constellationTask('k@dev-1', 'dev-1', 2, { task_name: 'notified' }));
    const ack = await first.next((m) => m.type === 'heartbeat' && m.session_id !== null);
    const id = ack.session_id!;
    // The device is told in every case (it ran the task for a constellation).
    await device.next((m) => m.type === 'task_end' && m.session_id === id);
    const told = mode !== 'leaves';
    let rec = await store.get(id);
    await until(
      async () => {
        rec = await store.get(id);
        return rec?.status === 'completed' && rec.task?.requester_notified === told;
      },
      'the end to be recorded',
      5000,
    );
    // Told: its task_end arrives (on its own socket, maybe after the device's); not told: its socket is closed.
    const endSeen = told
      ? (await requester.next((m) => m.type === 'task_end' && m.session_id === id, 5000, 0)).type ===
        'task_end'
      : first.frames.some((f) => f.msg.type === 'task_end');
    return { notified: rec!.task!.requester_notified, endSeen };
  }

  it('is true when the requester was connected and sent task_end', async () => {
    expect(await run('stays')).toEqual({ notified: true, endSeen: true });
  });

  it('is false when the requester left while the end was being recorded', async () => {
    expect(await run('leaves')).toEqual({ notified: false, endSeen: false });
  });

  it('is true when the requester came back on a new connection meanwhile: that one is sent task_end', async () => {
    expect(await run('returns')).toEqual({ notified: true, endSeen: true });
  });
});
