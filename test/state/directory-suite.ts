/** The shared conformance suite of the ClientDirectory interface: memory.test.ts and redis-directory.test.ts. */
import { describe, expect, it } from 'vitest';
import type { ServerMessageInput } from '../../protocol/index.js';
import type { ClientDirectory, ClientInfo, ClientLink } from '../../src/state/client-directory.js';
import { withImpl, type Fixture } from './fixture.js';

/** A link that records what it was sent. */
export class RecordingLink implements ClientLink {
  readonly sent: ServerMessageInput[] = [];
  closed = false;
  constructor(readonly id: string) {}
  send(msg: ServerMessageInput): boolean {
    if (this.closed) return false;
    this.sent.push(msg);
    return true;
  }
  sendRaw(): boolean {
    return !this.closed;
  }
  bufferedBytes(): number {
    return 0;
  }
  close(): void {
    this.closed = true;
  }
}

export function clientInfo(id: string, over: Partial<ClientInfo> = {}): ClientInfo {
  return {
    clientId: id,
    clientType: 'device',
    targetId: null,
    platform: 'linux',
    metadata: {},
    systemInfo: null,
    connectedAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}

export function clientDirectorySuite(name: string, fixture: Fixture<ClientDirectory>): void {
  describe(`ClientDirectory conformance: ${name}`, () => {
    const dir = withImpl(fixture);

    it('registers, finds and reaches a client, and refuses a duplicate without touching the original', async () => {
      const a = new RecordingLink('conn-a');
      const b = new RecordingLink('conn-b');
      expect(await dir().register(clientInfo('dev-1'), a)).toBe(true);
      expect(await dir().register(clientInfo('dev-1', { platform: 'windows' }), b)).toBe(false);
      expect(dir().get('dev-1')).toMatchObject({ clientId: 'dev-1', platform: 'linux' });
      expect(dir().link('dev-1')).toBe(a);
      expect(dir().clientOf(a)?.clientId).toBe('dev-1');
      expect(dir().clientOf(b)).toBeUndefined();
      dir().link('dev-1')!.send({ type: 'heartbeat', status: 'ok' });
      expect(a.sent).toHaveLength(1);
      expect(b.sent).toHaveLength(0);
    });

    it('unregisters only through the link that registered', async () => {
      const a = new RecordingLink('conn-a');
      await dir().register(clientInfo('dev-1'), a);
      expect(await dir().unregister('dev-1', new RecordingLink('other'))).toBe(false);
      expect(dir().get('dev-1')).toBeDefined();
      expect(await dir().unregister('dev-1', a)).toBe(true);
      expect(dir().get('dev-1')).toBeUndefined();
      expect(dir().link('dev-1')).toBeUndefined();
      expect(await dir().register(clientInfo('dev-1'), new RecordingLink('conn-c'))).toBe(true);
    });

    it('lists in registration order and counts roles', async () => {
      await dir().register(clientInfo('dev-1'), new RecordingLink('1'));
      await dir().register(
        clientInfo('k@dev-1', { clientType: 'constellation', targetId: 'dev-1' }),
        new RecordingLink('2'),
      );
      await dir().register(clientInfo('dev-2'), new RecordingLink('3'));
      expect(dir().list()).toEqual(['dev-1', 'k@dev-1', 'dev-2']);
      expect(dir().stats()).toEqual({ total: 3, device_clients: 2, constellation_clients: 1 });
      expect([...dir().all()].map((c) => c.clientId)).toEqual(['dev-1', 'k@dev-1', 'dev-2']);
    });

    it('refuses an id once whatever the role, and forgets a client fully on unregister', async () => {
      const a = new RecordingLink('conn-a');
      await dir().register(clientInfo('x'), a);
      expect(
        await dir().register(clientInfo('x', { clientType: 'constellation' }), new RecordingLink('b')),
      ).toBe(false);
      expect(await dir().unregister('nobody', a)).toBe(false);
      expect(await dir().unregister('x', a)).toBe(true);
      expect(await dir().unregister('x', a)).toBe(false);
      expect(dir().clientOf(a)).toBeUndefined();
      expect(dir().list()).toEqual([]);
      expect(dir().stats()).toEqual({ total: 0, device_clients: 0, constellation_clients: 0 });
    });

    it('lets exactly one of 100 concurrent registrations of one id win, and keeps the winner', async () => {
      const links = Array.from({ length: 100 }, (_, i) => new RecordingLink(`c${i}`));
      const results = await Promise.all(links.map((l) => dir().register(clientInfo('same'), l)));
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = links[results.indexOf(true)]!;
      expect(dir().link('same')).toBe(winner);
      expect(dir().list()).toEqual(['same']);
    });
  });
}
