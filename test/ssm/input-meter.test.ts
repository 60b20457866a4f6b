/** The SSM bridges' input meter: bytes count until the device's credit takes them, or their channel is gone. */
import { describe, expect, it } from 'vitest';
import type { ChannelEndpoint } from '../../src/channel/endpoint.js';
import { InputMeter } from '../../src/ssm/bridge.js';

/** An endpoint whose writes settle when the test says. */
function endpoint(): { ep: ChannelEndpoint; settle: (ok: boolean) => void } {
  const pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const ep = {
    write: () => new Promise<void>((resolve, reject) => pending.push({ resolve, reject })),
  } as unknown as ChannelEndpoint;
  return {
    ep,
    settle: (ok) => {
      const p = pending.shift()!;
      if (ok) p.resolve();
      else p.reject(new Error('channel reset'));
    },
  };
}

describe('InputMeter', () => {
  it('closes at its budget and reopens, telling its owner, when the device takes the bytes', async () => {
    let rooms = 0;
    const m = new InputMeter(100, () => rooms++);
    const { ep, settle } = endpoint();
    m.write(ep, new Uint8Array(60));
    expect(m.open).toBe(true);
    m.write(ep, new Uint8Array(60));
    expect(m.bytes).toBe(120);
    expect(m.open).toBe(false);
    settle(true);
    await Promise.resolve();
    expect(m.bytes).toBe(60);
    expect(m.open).toBe(true);
    expect(rooms).toBe(1);
  });

  it('releases the bytes of a write whose channel was reset, and tells its owner (input held elsewhere goes on)', async () => {
    let rooms = 0;
    const m = new InputMeter(100, () => rooms++);
    const { ep, settle } = endpoint();
    m.write(ep, new Uint8Array(150));
    expect(m.open).toBe(false);
    settle(false);
    await Promise.resolve();
    await Promise.resolve();
    expect(m.bytes).toBe(0);
    expect(m.open).toBe(true);
    expect(rooms).toBe(1);
  });
});
