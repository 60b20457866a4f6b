/**
 * Crash recovery's grace period against a resume in flight (in-process, over the memory store). A device that
 * registers takes its crashed task out of the waiting list while the resume reads the record; if the device is gone
 * again by then, the task goes back to waiting. The grace timer fires once: a task put back after it fired used to
 * wait for ever (the record stayed `crashed`, the requester got no `task_end`). Now it ends failed there.
 * The resume is held at its first await (the `stillLive` check) so the order is exact, with no timing race.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ServerMessageInput } from '../../protocol/index.js';
import { silentLogger } from '../../src/logger.js';
import { SessionService } from '../../src/records/session-service.js';
import { TaskRecovery } from '../../src/server/recovery.js';
import { TaskRecords } from '../../src/server/task-records.js';
import type { TaskService } from '../../src/server/tasks.js';
import type { ClientDirectory } from '../../src/state/client-directory.js';
import { EventBus } from '../../src/state/events.js';
import { MemorySessionStore } from '../../src/state/memory-session-store.js';

/** A grace that runs out while the resume is held, and one long enough to see the task waiting again first. */
const SHORT_GRACE_MS = 30;
const LONG_GRACE_MS = 600;
const recoveries: TaskRecovery[] = [];
afterEach(() => {
  for (const r of recoveries.splice(0)) r.stop();
});

async function crashedTask(graceMs: number) {
  const store = new MemorySessionStore();
  await store.open();
  const log = silentLogger();
  const sessions = new SessionService(store, log, { maxEventDataBytes: 64 * 1024 });
  const records = new TaskRecords(sessions, 'node-a', log);
  const rec = records.record({
    id: 'a5c1e2d3-0000-4000-8000-000000000001',
    taskName: 'grace',
    requester: 'ctl-1',
    executor: 'dev-1',
    platform: 'linux',
    mode: 'service',
    request: '{"task":"grace","steps":[]}',
    history: [{ state: 'created', at: sessions.now() }],
  });
  expect(await records.begin(rec)).toBe(true);
  // The device is never reachable (it left again); the requester is, and keeps what it is sent.
  const sent: ServerMessageInput[] = [];
  const directory = {
    get: () => undefined,
    link: (id: string) =>
      id === 'ctl-1'
        ? {
            send: (f: ServerMessageInput) => {
              sent.push(f);
              return true;
            },
          }
        : undefined,
  } as unknown as ClientDirectory;
  let release: (live: boolean) => void = () => undefined;
  const held = new Promise<boolean>((r) => (release = r));
  const bus = new EventBus();
  const recovery = new TaskRecovery(
    {} as TaskService,
    records,
    directory,
    bus,
    { resume: 'auto', resumeGraceMs: graceMs, stillLive: () => held },
    log,
  );
  recoveries.push(recovery);
  expect(await recovery.markCrashed()).toBe(1);
  await recovery.start();
  expect(recovery.pending).toBe(1);
  const deviceRegisters = (): void =>
    bus.emit('client.registered', {
      clientId: 'dev-1',
      clientType: 'device',
      platform: 'linux',
      connId: 'conn-1',
      codec: 'aip-json',
    });
  const status = async (): Promise<string | undefined> => (await sessions.get(rec.id))?.status;
  return { recovery, deviceRegisters, release, status, sent };
}

describe('crash recovery: the grace period and a resume in flight', () => {
  it('fails a task whose device left again after the grace timer fired, and tells its requester', async () => {
    const t = await crashedTask(SHORT_GRACE_MS);
    t.deviceRegisters();
    expect(t.recovery.pending).toBe(0); // out of the waiting list while the resume reads the record
    await new Promise((r) => setTimeout(r, SHORT_GRACE_MS * 3)); // the grace timer fires and finds nothing waiting
    expect(await t.status()).toBe('crashed');
    t.release(true);
    await vi.waitFor(async () => expect(await t.status()).toBe('failed'));
    expect(t.recovery.pending).toBe(0);
    expect(t.sent).toHaveLength(1);
    expect(t.sent[0]).toMatchObject({ type: 'task_end', status: 'failed' });
    expect(String(t.sent[0]!.error)).toMatch(/did not reconnect within/);
  });

  it('puts the task back to wait when its device left again within the grace, and the timer fails it', async () => {
    const t = await crashedTask(LONG_GRACE_MS);
    t.deviceRegisters();
    t.release(true);
    await vi.waitFor(() => expect(t.recovery.pending).toBe(1), { interval: 5 });
    expect(await t.status()).toBe('crashed');
    await vi.waitFor(async () => expect(await t.status()).toBe('failed'), { timeout: LONG_GRACE_MS * 5 });
    expect(t.recovery.pending).toBe(0);
    expect(t.sent.map((f) => f.type)).toEqual(['task_end']);
  });
});
