/**
 * Isolation under load: 1,000 devices register at once and each runs a 10-step plan task, all concurrently.
 * Every task must complete, and every command must reach only the device whose session it belongs to.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer } from '../helpers/aip-server.js';
import { RawClient } from '../helpers/raw-client.js';

const DEVICES = 1000;
const STEPS = 10;

describe('isolation under load', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  const devices: RawClient[] = [];
  beforeAll(async () => {
    server = await startTestServer({ commandTimeoutMs: 60_000 });
  });
  afterAll(async () => {
    await Promise.all(devices.map((d) => d.close()));
    await server.close();
  });

  it(`runs ${DEVICES} concurrent ${STEPS}-step plan tasks with no frame on the wrong socket`, async () => {
    const connected = await Promise.all(Array.from({ length: DEVICES }, () => RawClient.connect(server.url)));
    devices.push(...connected);
    const replies = await Promise.all(
      devices.map((d, i) => d.register(`dev-${i}`, { metadata: { platform: 'linux' } })),
    );
    expect(replies.every((r) => r.type === 'heartbeat' && r.status === 'ok')).toBe(true);
    expect(server.registry.stats().device_clients).toBe(DEVICES);

    for (const d of devices) d.autoAnswer((tool, m) => `${tool}:${m.session_id}`);
    const plan = (id: string): string =>
      JSON.stringify({
        task: 't',
        steps: Array.from({ length: STEPS }, (_, i) => ({
          actions: [{ tool_name: 'step', tool_type: 'action', parameters: { device: id, i } }],
        })),
      });
    devices.forEach((d, i) =>
      d.send({ type: 'task', status: 'continue', request: plan(`dev-${i}`), task_name: `load-${i}` }),
    );
    const ends = await Promise.all(devices.map((d) => d.next((m) => m.type === 'task_end', 60_000, 0)));

    expect(ends.filter((e) => e.status === 'completed')).toHaveLength(DEVICES);
    devices.forEach((d, i) => {
      const ack = d.ofType('heartbeat').find((m) => m.session_id !== null)!;
      const commands = d.ofType('command');
      expect(commands).toHaveLength(STEPS);
      for (const [step, c] of commands.entries()) {
        expect(c.session_id).toBe(ack.session_id);
        expect(c.actions![0]!.parameters).toEqual({ device: `dev-${i}`, i: step });
      }
      expect(ends[i]!.session_id).toBe(ack.session_id);
      const result = ends[i]!.result as {
        steps_completed: number;
        steps: { results: { result: string }[] }[];
      };
      expect(result.steps_completed).toBe(STEPS);
      expect(result.steps.every((s) => s.results[0]!.result === `step:${ack.session_id}`)).toBe(true);
    });
    const sessionIds = new Set(ends.map((e) => e.session_id));
    expect(sessionIds.size).toBe(DEVICES);
    expect(server.tasks.live.size).toBe(0);
  }, 120_000);
});
