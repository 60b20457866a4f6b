/**
 * UFO parity for §10 transfers through aipd: a device sends a `binary_data` pair and a chunked file transfer
 * (built with src/channel/aip-transfer.ts) carrying the session_id of its live constellation task; the
 * constellation receives exactly the same frames in order, and they validate (size, MD5) on its side too.
 * A wrong MD5 earns the sender an `error` frame "Checksum mismatch: ..." and the bad frame is not relayed;
 * transfers naming no live session are refused. The peers are plain `ws` sockets so every frame is visible.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors } from '../../protocol/index.js';
import {
  AipTransferReceiver,
  binaryMessageFrames,
  fileTransferFrames,
  type TransferEvent,
} from '../../src/channel/aip-transfer.js';
import { startTestServer } from '../helpers/aip-server.js';
import { asFrame, heldSession, inSession, type Peer } from '../helpers/ws-peer.js';
import { waitFor } from './helpers.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;
describe('UFO binary and file transfers through aipd (ufo-aip.md §10)', () => {
  let server: Server;
  let device: Peer;
  let galaxy: Peer;
  const SID = 'k@ufo-dev@task1';
  beforeEach(async () => {
    server = await startTestServer({ commandTimeoutMs: 60_000 });
    ({ device, galaxy } = await heldSession(server.url, 'ufo-dev', SID)); // the device holds its command
  });
  afterEach(async () => {
    device.ws.terminate();
    galaxy.ws.terminate();
    await server.close();
  });

  it('relays a binary_data pair and a chunked file transfer frame for frame, MD5 valid at the constellation', async () => {
    const blob = randomBytes(5000);
    blob[0] = 0xc1; // a payload that starts like a channel frame is still the transfer's
    const file = randomBytes(300 * 1024 + 17);
    const sent = [
      ...inSession(binaryMessageFrames(blob, { description: 'screenshot' }), SID),
      ...inSession(
        fileTransferFrames('logs/report.bin', file, {
          chunkSize: 64 * 1024,
          mimeType: 'application/octet-stream',
        }),
        SID,
      ),
    ];
    const from = galaxy.frames.length;
    for (const f of sent) device.sendFrame(f);
    await waitFor(() => galaxy.frames.length - from >= sent.length, 5000, 'every frame at the constellation');
    const got = galaxy.frames.slice(from);
    expect(got).toEqual(sent.map(asFrame));
    expect(device.texts('error')).toEqual([]);

    const rx = new AipTransferReceiver();
    const events: TransferEvent[] = [];
    for (const f of got) {
      const r = 'text' in f ? rx.text(f.text) : rx.binary(f.binary);
      if (!r.ok) throw r.error;
      events.push(...r.events);
    }
    expect(events[0]).toMatchObject({
      type: 'binary',
      metadata: { description: 'screenshot', size: 5000, session_id: SID },
    });
    expect(Buffer.from((events[0] as { data: Uint8Array }).data).equals(blob)).toBe(true);
    const complete = events.at(-1)!;
    expect(complete).toEqual({
      type: 'file_complete',
      filename: 'logs/report.bin',
      size: file.byteLength,
      totalChunks: 5,
      checksum: createHash('md5').update(file).digest('hex'),
    });
    expect(events.filter((e) => e.type === 'file_chunk')).toHaveLength(5);
  });

  it('a transfer refused at its first frame is the sender’s error only: the receiver, sent nothing, is told nothing', async () => {
    const errFrom = device.frames.length;
    const from = galaxy.frames.length;
    device.send({ type: 'file_transfer_start', session_id: SID, filename: 42 }); // not a file name
    expect((await device.next('error', errFrom)).error).toMatch(/^Invalid transfer metadata: /);
    // a heartbeat round trip later, the constellation has still received nothing
    const hb = device.frames.length;
    device.send({ type: 'heartbeat', status: 'ok', client_id: 'ufo-dev' });
    await device.next('heartbeat', hb);
    await new Promise((r) => setTimeout(r, 50));
    expect(galaxy.frames.slice(from)).toEqual([]);
  });

  it("answers a wrong MD5 with UFO's 'Checksum mismatch' error and does not relay the bad completion", async () => {
    const file = randomBytes(100_000);
    const frames = inSession(fileTransferFrames('a.bin', file, { chunkSize: 40_000 }), SID);
    const last = frames.pop() as { text: string };
    const bad = { ...(JSON.parse(last.text) as Record<string, unknown>), checksum: '0'.repeat(32) };
    const from = galaxy.frames.length;
    const errFrom = device.frames.length;
    for (const f of frames) device.sendFrame(f);
    device.send(bad);
    const err = await device.next('error', errFrom);
    const md5 = createHash('md5').update(file).digest('hex');
    expect(err.error).toBe(`Checksum mismatch: expected ${'0'.repeat(32)}, got ${md5}`);
    await waitFor(() => galaxy.frames.length - from >= frames.length, 5000, 'the valid frames');
    expect(galaxy.frames.slice(from, from + frames.length)).toEqual(frames.map(asFrame));
    expect(galaxy.texts('file_transfer_complete')).toEqual([]);
    // the receiver, which had the start and the chunks, is told too, instead of waiting for the rest
    expect((await galaxy.next('error', from)).error).toBe(
      `Checksum mismatch: expected ${'0'.repeat(32)}, got ${md5}`,
    );
  });

  it('refuses transfers that name no live session, also after the session ended', async () => {
    const noSession = Errors.TRANSFER_NO_SESSION.text();
    let errFrom = device.frames.length;
    device.sendFrame(binaryMessageFrames(randomBytes(10))[0]); // no session_id at all
    expect((await device.next('error', errFrom)).error).toBe(noSession);
    errFrom = device.frames.length;
    device.sendFrame(inSession(fileTransferFrames('x.bin', randomBytes(10)), 'no-such-session')[0]!);
    expect((await device.next('error', errFrom)).error).toBe(noSession);

    // A transfer under way when the task ends: what comes after the end is not relayed, and both sides are told.
    const pending = inSession(
      fileTransferFrames('mid.bin', randomBytes(100_000), { chunkSize: 40_000 }),
      SID,
    );
    const galaxyFrom = galaxy.frames.length;
    for (const f of pending.slice(0, 3)) device.sendFrame(f); // start, and the first chunk's metadata and bytes
    await waitFor(
      () => galaxy.frames.slice(galaxyFrom).some((f) => 'binary' in f),
      5000,
      'the first chunk to be relayed',
    );
    expect(galaxy.frames.slice(galaxyFrom)).toEqual(pending.slice(0, 3).map(asFrame));

    // End the task (answer the held command), then try its session id again.
    const cmd = device.texts('command')[0]!;
    device.send({
      type: 'command_results',
      status: 'continue',
      client_type: 'device',
      client_id: 'ufo-dev',
      session_id: SID,
      prev_response_id: cmd.response_id,
      action_results: [{ status: 'success', result: 'ok' }],
    });
    await galaxy.next('task_end', 0);
    errFrom = device.frames.length;
    const relayed = galaxy.frames.length;
    for (const f of pending.slice(3)) device.sendFrame(f);
    expect((await device.next('error', errFrom)).error).toBe(noSession);
    expect((await galaxy.next('error', relayed)).error).toBe(noSession);
    await new Promise((r) => setTimeout(r, 100));
    // nothing of the transfer after the end: only the error
    expect(galaxy.frames.slice(relayed).filter((f) => 'binary' in f || f.text.type !== 'error')).toEqual([]);
    errFrom = device.frames.length;
    const relayedBefore = galaxy.texts('binary_data').length; // the mid-transfer chunk's metadata, before the end
    device.sendFrame(inSession(binaryMessageFrames(randomBytes(10)), SID)[0]!);
    expect((await device.next('error', errFrom)).error).toBe(noSession);
    expect(galaxy.texts('binary_data')).toHaveLength(relayedBefore);
  });
});
