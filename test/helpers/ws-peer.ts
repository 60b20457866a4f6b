/** A plain `ws` peer for transfer tests: every frame it receives is kept, text frames parsed as JSON. */
import WebSocket from 'ws';
import type { OutFrame } from '../../src/channel/aip-transfer.js';
import { waitFor } from '../e2e/helpers.js';
import { planRequest } from './aip-server.js';

export type Frame = { text: Record<string, unknown> } | { binary: Buffer };

export class Peer {
  readonly frames: Frame[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary) => {
      this.frames.push(
        isBinary
          ? { binary: Buffer.from(data) }
          : { text: JSON.parse(data.toString('utf8')) as Record<string, unknown> },
      );
    });
  }
  static async connect(url: string): Promise<Peer> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new Peer(ws);
  }
  send(obj: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(obj));
  }
  sendFrame(f: OutFrame): void {
    if ('text' in f) this.ws.send(f.text);
    else this.ws.send(f.binary, { binary: true });
  }
  texts(type: string): Record<string, unknown>[] {
    return this.frames.flatMap((f) => ('text' in f && f.text.type === type ? [f.text] : []));
  }
  async next(type: string, from: number): Promise<Record<string, unknown>> {
    await waitFor(
      () => this.frames.slice(from).some((f) => 'text' in f && f.text.type === type),
      5000,
      `a '${type}' frame`,
    );
    return this.frames.slice(from).flatMap((f) => ('text' in f && f.text.type === type ? [f.text] : []))[0]!;
  }
}

/** Adds the session id to every control frame (the binary frames stay as they are). */
export function inSession(frames: Iterable<OutFrame>, sessionId: string): OutFrame[] {
  return [...frames].map((f) =>
    'text' in f ? { text: JSON.stringify({ ...(JSON.parse(f.text) as object), session_id: sessionId }) } : f,
  );
}

/** A frame as a Peer receives it. */
export const asFrame = (f: OutFrame): Frame =>
  'text' in f ? { text: JSON.parse(f.text) as Record<string, unknown> } : { binary: Buffer.from(f.binary) };

/**
 * A device and a constellation, plain `ws` peers of the server at `url`, joined by the live session `sid`: the
 * constellation's task is one `hold` command, which the device is sent and never answers, so the session stays live.
 */
export async function heldSession(
  url: string,
  deviceId: string,
  sid: string,
): Promise<{ device: Peer; galaxy: Peer }> {
  const device = await Peer.connect(url);
  const galaxy = await Peer.connect(url);
  device.send({
    type: 'register',
    status: 'ok',
    client_type: 'device',
    client_id: deviceId,
    metadata: { platform: 'linux' },
  });
  await device.next('heartbeat', 0);
  const galaxyId = `k@${deviceId}`;
  galaxy.send({
    type: 'register',
    status: 'ok',
    client_type: 'constellation',
    client_id: galaxyId,
    target_id: deviceId,
  });
  await galaxy.next('heartbeat', 0);
  galaxy.send({
    type: 'task',
    status: 'continue',
    client_type: 'constellation',
    client_id: galaxyId,
    target_id: deviceId,
    request: planRequest(1, 'hold'),
    session_id: sid,
  });
  await device.next('command', 0);
  return { device, galaxy };
}
