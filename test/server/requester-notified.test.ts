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

  async function run(leaveBeforeEnd: boolean): Promise<{ notified: boolean; endSeen: boolean }> {
    const store = new EndHookStore();
    server = await startTestServer({}, { sessions: store });
    const s = server;
    const device = await RawClient.connect(s.url, 'json');
    clients.push(device);
    await device.register('dev-1', { metadata: { platform: 'windows' } });
    device.autoAnswer();
    const requester = await RawClient.connect(s.url, 'json');
    clients.push(requester);
    await requester.register('k@dev-1', { client_type: 'constellation', target_id: 'dev-1' });
    if (leaveBeforeEnd)
      store.beforeEnd = async () => {
        await requester.close();
        await until(() => s.registry.get('k@dev-1') === undefined, 'the server to drop the requester');
      };
    requester.send(constellationTask('k@dev-1', 'dev-1', 2, { task_name: 'notified' }));
    const ack = await requester.next((m) => m.type === 'heartbeat' && m.session_id !== null);
    const id = ack.session_id!;
    // The device is told in both cases (it ran the task for a constellation).
    await device.next((m) => m.type === 'task_end' && m.session_id === id);
    let rec = await store.get(id);
    await until(
      async () => {
        rec = await store.get(id);
        return rec?.status === 'completed' && (!leaveBeforeEnd || rec.task?.requester_notified === false);
      },
      'the end to be recorded',
      5000,
    );
    return {
      notified: rec!.task!.requester_notified,
      endSeen: requester.frames.some((f) => f.msg.type === 'task_end'),
    };
  }

  it('is true when the requester was connected and sent task_end', async () => {
    expect(await run(false)).toEqual({ notified: true, endSeen: true });
  });

  it('is false when the requester left while the end was being recorded', async () => {
    expect(await run(true)).toEqual({ notified: false, endSeen: false });
  });
});
