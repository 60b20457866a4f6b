/**
 * Channel ids across cluster nodes: two real nodes on port 0 (one Redis prefix, a throwaway PostgreSQL database),
 * a real `aipd device` on node B, and remote sessions over real HTTP on both nodes. Each node numbers the channels
 * it opens on its own; the device's node translates the other node's ids, so channels opened from A and from B at
 * the same moment on the one device socket never take each other's answers, and no id is left reserved.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_KEY } from '../helpers/aip-server.js';
import { Peer } from '../helpers/ws-peer.js';
import { waitFor } from '../helpers/redis.js';
import { api, startDevice, until, type Api, type DeviceProc } from '../remote/helpers.js';
import { InProcessNodes, type NodeServer } from './in-process-nodes.js';
import { encodeAccept } from '../../protocol/channel.js';

describe('channel ids across cluster nodes', () => {
  let nodes: InProcessNodes;
  let a: NodeServer;
  let b: NodeServer;
  let device: DeviceProc;
  let root: string;
  let onA: Api;
  let onB: Api;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'aipd-xids-'));
    for (let i = 0; i < 4; i++) writeFileSync(join(root, `file-${i}.txt`), `content ${i}`);
    nodes = await InProcessNodes.create();
    a = await nodes.node('ids-a', { drainTimeoutMs: 100 });
    b = await nodes.node('ids-b', { drainTimeoutMs: 100 });
    onA = api(`http://127.0.0.1:${a.port}`, TEST_KEY);
    onB = api(`http://127.0.0.1:${b.port}`, TEST_KEY);
    device = await startDevice(`http://127.0.0.1:${b.port}`, TEST_KEY, 'ids-dev', [
      '--root',
      root,
      '--allow-exec',
    ]);
    await waitFor('node a to see the device', () => a.registry.get('ids-dev') !== undefined);
  }, 60_000);

  afterAll(async () => {
    await device?.stop();
    await nodes?.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  async function session(on: Api): Promise<string> {
    const r = await on.call('POST', '/sessions', { agent_id: 'ids-dev', session_type: 'interactive' });
    expect(r.status, r.text).toBe(201);
    return r.json.id as string;
  }

  const listed = async (on: Api, id: string): Promise<string[]> => {
    const r = await on.call('GET', `/sessions/${id}/files?path=.`);
    expect(r.status, r.text).toBe(200);
    return (r.json.files as { filename: string }[]).map((f) => f.filename).sort();
  };

  it('lists files from A, then B, then B again: each answered, by its own channel', async () => {
    const sa = await session(onA);
    const sb = await session(onB);
    const want = ['file-0.txt', 'file-1.txt', 'file-2.txt', 'file-3.txt'];
    expect(await listed(onA, sa)).toEqual(want);
    expect(await listed(onB, sb)).toEqual(want);
    expect(await listed(onB, sb)).toEqual(want);
    expect(await listed(onA, sa)).toEqual(want);
  });

  it('runs commands from both nodes at once on the one device socket, each getting its own output', async () => {
    const sa = await session(onA);
    const sb = await session(onB);
    const run = (on: Api, id: string, tag: string) =>
      on.call('POST', `/sessions/${id}/execute`, { mode: 'query', code: `sleep 0.2; echo ${tag}` });
    for (let round = 0; round < 3; round++) {
      const [ra, rb] = await Promise.all([run(onA, sa, `from-a-${round}`), run(onB, sb, `from-b-${round}`)]);
      expect(ra.json, ra.text).toMatchObject({ status: 'finished', stdout: `from-a-${round}\n` });
      expect(rb.json, rb.text).toMatchObject({ status: 'finished', stdout: `from-b-${round}\n` });
    }
    await until(
      () => a.channels.stats().channels === 0 && b.channels.stats().channels === 0,
      'the channels to close on both nodes',
    );
  });

  it("leaves no translated id behind: more channels from A than the device socket's limit (64), one after another", async () => {
    const sa = await session(onA);
    for (let i = 0; i < 70; i++) {
      const r = await onA.call('GET', `/sessions/${sa}/files?path=.`);
      expect(r.status, `listing ${i}: ${r.text}`).toBe(200);
    }
    expect(await listed(onB, await session(onB))).toHaveLength(4);
  });

  it('ends a request on A whose channel is open when the device leaves B (not left waiting)', async () => {
    const raw = await Peer.connect(`ws://127.0.0.1:${b.port}/ws?token=${TEST_KEY}`);
    raw.send({
      type: 'register',
      status: 'ok',
      client_id: 'ids-raw',
      metadata: {
        platform: 'linux',
        aipd_device: { version: 1, channels: ['file'], exec: false, pty: false, root: true, ports: [] },
      },
    });
    await waitFor('node a to see ids-raw', () => a.registry.get('ids-raw') !== undefined);
    const r = await onA.call('POST', '/sessions', { agent_id: 'ids-raw', session_type: 'interactive' });
    expect(r.status, r.text).toBe(201);
    const listing = onA.call('GET', `/sessions/${r.json.id}/files?path=.`);
    // The OPEN reaches the device; it accepts, then leaves without answering.
    const isOpen = (f: (typeof raw.frames)[number]): boolean =>
      'binary' in f && f.binary[0] === 0xc1 && f.binary[1] === 1;
    await until(() => raw.frames.some(isOpen), 'the OPEN at the device');
    const open = raw.frames.find(isOpen) as { binary: Buffer };
    raw.ws.send(encodeAccept(open.binary.readUInt32BE(2), 65536));
    await until(() => a.channels.stats().channels === 1, 'the channel open on A');
    raw.ws.terminate();
    const answer = await listing;
    expect(answer.status, answer.text).toBe(502);
    expect(answer.json.detail).toMatch(/gone|disconnected|closed/i);
    await until(() => a.channels.stats().channels === 0, 'the channel freed on A');
  });
});
