/**
 * Data channels and UFO transfers across cluster nodes (real servers on port 0, one Redis with a fresh prefix, a
 * throwaway PostgreSQL database). The device is on node B, its constellation on node A, and the session runs on
 * B:
 *
 * - a `stream` channel opened from A runs `echo` on the device and returns its output and exit status;
 * - `file` channels upload and download a file with its SHA-256 intact;
 * - a UFO `binary_data` pair and a chunked file transfer from the device reach the constellation frame for frame;
 *   a transfer from the constellation reaches the device the same way, payloads that begin like a channel frame
 *   included (only the channel router's frames are channel frames to the node that relays them).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binaryMessageFrames, fileTransferFrames } from '../../src/channel/aip-transfer.js';
import { runCommand } from '../../src/client/channels/controller.js';
import { createDeviceChannelHandler } from '../../src/client/channels/device.js';
import { downloadFile, uploadFile } from '../../src/client/channels/file-client.js';
import { livePair, waitFor as waitUntil } from '../e2e/helpers.js';
import { planRequest, TEST_KEY } from '../helpers/aip-server.js';
import { waitFor } from '../helpers/redis.js';
import { asFrame, inSession, Peer } from '../helpers/ws-peer.js';
import { InProcessNodes, type NodeServer as Server } from './in-process-nodes.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('channels and UFO transfers across cluster nodes', () => {
  let nodes: InProcessNodes;
  const dirs: string[] = [];
  let a: Server;
  let b: Server;

  beforeAll(async () => {
    nodes = await InProcessNodes.create();
    const config = { commandTimeoutMs: 60_000, drainTimeoutMs: 100 };
    a = await nodes.node('ch-a', config);
    b = await nodes.node('ch-b', config);
  });
  afterAll(async () => {
    await nodes.dispose();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('runs a command and moves files over channels opened on node A to a device on node B', async () => {
    const root = mkdtempSync(join(tmpdir(), 'aipd-xch-root-'));
    const local = mkdtempSync(join(tmpdir(), 'aipd-xch-local-'));
    dirs.push(root, local);
    const pair = await livePair({
      url: `ws://127.0.0.1:${b.port}/ws`,
      controllerUrl: `ws://127.0.0.1:${a.port}/ws`,
      token: TEST_KEY,
      deviceId: 'ch-dev',
      deviceOnOpen: createDeviceChannelHandler({ fileRoot: root, stream: {}, port: {} }),
      beforeController: () => waitFor('node a to see ch-dev', () => a.registry.get('ch-dev') !== undefined),
    });
    try {
      expect(b.tasks.live.has(pair.sessionId)).toBe(true);
      const { stream, exit } = await runCommand(pair.controllerMux, pair.sessionId, 'echo', {
        args: ['across', 'nodes'],
      });
      let out = '';
      for await (const c of stream) out += Buffer.from(c as Uint8Array).toString('utf8');
      expect(out).toBe('across nodes\n');
      expect(await exit).toMatchObject({ exitCode: 0 });

      const body = randomBytes(700 * 1024 + 3);
      const src = join(local, 'src.bin');
      writeFileSync(src, body);
      const up = await uploadFile(pair.controllerMux, pair.sessionId, src, 'up.bin');
      expect(up).toMatchObject({ size: body.length, sha256: sha(body) });
      expect(sha(readFileSync(join(root, 'up.bin')))).toBe(sha(body));
      const dst = join(local, 'down.bin');
      const down = await downloadFile(pair.controllerMux, pair.sessionId, 'up.bin', dst);
      expect(down).toMatchObject({ size: body.length, sha256: sha(body) });
      expect(sha(readFileSync(dst))).toBe(sha(body));
    } finally {
      await pair.close();
    }
    await waitFor('the channels to close on both nodes', () => {
      return a.channels.stats().channels === 0 && b.channels.stats().channels === 0;
    });
  });

  it('relays UFO transfers both ways between a device on B and its constellation on A, frame for frame', async () => {
    const device = await Peer.connect(`ws://127.0.0.1:${b.port}/ws?token=${TEST_KEY}`);
    const galaxy = await Peer.connect(`ws://127.0.0.1:${a.port}/ws?token=${TEST_KEY}`);
    const SID = 'k@xufo@1';
    try {
      device.send({ type: 'register', status: 'ok', client_type: 'device', client_id: 'xufo', metadata: {} });
      await device.next('heartbeat', 0);
      await waitFor('node a to see xufo', () => a.registry.get('xufo') !== undefined);
      galaxy.send({
        type: 'register',
        status: 'ok',
        client_type: 'constellation',
        client_id: 'k@xufo',
        target_id: 'xufo',
      });
      await galaxy.next('heartbeat', 0);
      galaxy.send({
        type: 'task',
        status: 'continue',
        client_type: 'constellation',
        client_id: 'k@xufo',
        target_id: 'xufo',
        request: planRequest(1, 'hold'),
        session_id: SID,
      });
      await device.next('command', 0); // held: the session stays live on B
      // The ACK crosses the bus too: wait for it so only transfer frames follow.
      await waitUntil(
        () => galaxy.texts('heartbeat').some((h) => h.session_id === SID),
        10_000,
        'the ACK on node a',
      );

      // Payloads that start as a channel frame would (0xC1, OPEN or DATA, an id): a transfer's bytes, not a channel's.
      const channelLike = (op: number, id: number): Buffer =>
        Buffer.concat([Buffer.from([0xc1, op, 0, 0, 0, id]), randomBytes(300)]);
      const up = [
        ...inSession(binaryMessageFrames(randomBytes(5000), { description: 'screenshot' }), SID),
        ...inSession(binaryMessageFrames(channelLike(1, 9), { description: 'looks like OPEN' }), SID),
        ...inSession(binaryMessageFrames(channelLike(4, 7), { description: 'looks like DATA' }), SID),
        ...inSession(
          fileTransferFrames('logs/r.bin', randomBytes(200 * 1024 + 9), { chunkSize: 64 * 1024 }),
          SID,
        ),
      ];
      const from = galaxy.frames.length;
      for (const f of up) device.sendFrame(f);
      await waitUntil(() => galaxy.frames.length - from >= up.length, 10_000, 'every frame on node a');
      expect(galaxy.frames.slice(from)).toEqual(up.map(asFrame));

      const downFrames = [
        ...inSession(fileTransferFrames('in/cfg.bin', randomBytes(90 * 1024), { chunkSize: 32 * 1024 }), SID),
        ...inSession(binaryMessageFrames(channelLike(1, 9), { description: 'looks like OPEN' }), SID),
        ...inSession(binaryMessageFrames(channelLike(4, 7), { description: 'looks like DATA' }), SID),
      ];
      const from2 = device.frames.length;
      for (const f of downFrames) galaxy.sendFrame(f);
      await waitUntil(
        () => device.frames.length - from2 >= downFrames.length,
        10_000,
        'every frame on node b',
      );
      expect(device.frames.slice(from2)).toEqual(downFrames.map(asFrame));
      expect(device.texts('error')).toEqual([]);
      expect(galaxy.texts('error')).toEqual([]);
    } finally {
      device.ws.terminate();
      galaxy.ws.terminate();
    }
  });
});
