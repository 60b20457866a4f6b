/**
 * The SSM data channel end to end with shells: a real aipd (uWS on port 0), a real `aipd device` child, and the
 * conformance client (ssm-test-client.ts) playing the plugin over a real WebSocket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { api, startDevice, until as untilAsync, type Api, type DeviceProc } from '../remote/helpers.js';
import WebSocket from 'ws';
import { decodeFrame, encodeFrame, SsmTestClient, until } from './ssm-test-client.js';

let server: Awaited<ReturnType<typeof startTestServer>>;
let device: DeviceProc;
let a: Api;
const DEV = 'ssm-shell-dev';
const WINDOW = 32;
const HANDSHAKE_MS = 1_500;
const TOKEN_WAIT_MS = 2_000;

beforeAll(async () => {
  server = await startTestServer({
    ssmOutgoingWindow: WINDOW,
    ssmResumeGraceMs: 10_000,
    ssmHandshakeTimeoutMs: HANDSHAKE_MS,
    streamTokenWaitMs: TOKEN_WAIT_MS,
  });
  const base = `http://127.0.0.1:${server.port}`;
  a = api(base, TEST_KEY);
  device = await startDevice(base, TEST_KEY, DEV, ['--allow-exec']);
}, 60_000);

afterAll(async () => {
  await device?.stop();
  await server?.close();
});

async function session(
  type: string,
  parameters: Record<string, unknown> = {},
  agent = DEV,
): Promise<{ id: string; url: string; token: string }> {
  const r = await a.call('POST', '/sessions', { agent_id: agent, session_type: type, parameters });
  expect(r.status, r.text).toBe(201);
  return { id: r.json.id, url: r.json.ssm_stream_url, token: r.json.token_value };
}

async function freshToken(id: string): Promise<string> {
  const r = await a.call('POST', `/sessions/${id}/token`);
  expect(r.status, r.text).toBe(200);
  return r.json.token_value as string;
}

async function statusOf(id: string): Promise<string> {
  return (await a.call('GET', `/sessions/${id}`)).json.status as string;
}

const show = (c: SsmTestClient) => (): string =>
  `output=${JSON.stringify(c.text())} closed=${String(c.closedOutput)} frames=${c.frames.length}`;

describe('shell over the SSM data channel', () => {
  it('answers ssm_stream_url beside stream_url', async () => {
    const s = await session('Standard_Stream');
    expect(s.url).toBe(`ws://127.0.0.1:${server.port}/sessions/${s.id}/ssm`);
    await a.call('DELETE', `/sessions/${s.id}`);
  });

  it('handshakes, applies the first Size to the PTY, runs commands and closes with the exit recorded', async () => {
    const s = await session('Standard_Stream');
    const c = new SsmTestClient(s.url, { sizeOnHandshake: { cols: 123, rows: 45 } });
    await c.open(s.token);
    await until(() => c.handshakeComplete, show(c));
    const req = c.handshakeRequest as { AgentVersion: string; RequestedClientActions: unknown[] };
    expect(req.AgentVersion).toBe('3.3.40.0');
    expect(req.RequestedClientActions).toEqual([
      { ActionType: 'SessionType', ActionParameters: { SessionType: 'Standard_Stream', Properties: {} } },
    ]);
    expect(c.delivered.slice(0, 2).map((f) => [f.seq, f.payloadType, f.flags])).toEqual([
      [0, 5, 1],
      [1, 7, 0],
    ]);
    c.input('stty size\n');
    await until(() => /45 123/.test(c.text()), show(c));
    c.size(100, 30);
    c.input('stty size; echo hello; exit 3\n');
    await until(() => c.closedOutput !== null, show(c));
    expect(c.text()).toMatch(/30 100/);
    expect(c.text()).toMatch(/hello/);
    expect(c.closedOutput).toBe('');
    await c.closed;
    await untilAsync(async () => (await statusOf(s.id)) === 'completed', 'completed');
    const log = await a.call('GET', `/sessions/${s.id}/logs`);
    expect(log.text).toMatch(/stream\.exit \{"exit_code":3/);
    // Every sequenced output was numbered in order, once per number in delivery.
    expect(c.delivered.map((f) => f.seq)).toEqual(c.delivered.map((_, i) => i));
  });

  it('refuses a second plugin (another ClientId) on a shell that has one, and the first goes on', async () => {
    const s = await session('Standard_Stream');
    const first = new SsmTestClient(s.url, { sizeOnHandshake: { cols: 80, rows: 24 } });
    await first.open(s.token);
    await until(() => first.handshakeComplete, show(first));
    const second = new SsmTestClient(s.url);
    await second.open(await freshToken(s.id));
    await second.closed;
    expect(second.closedOutput).toBe(
      `Session '${s.id}' already has a data-channel client; reconnect with the same client or start a new session`,
    );
    first.input('echo still-here\n');
    await until(() => /still-here\r?\n/.test(first.text().replace(/echo still-here/, '')), show(first));
    first.input('exit\n');
    await first.closed;
    expect(first.closedOutput).toBe('');
  });

  it('a shell attached with its token stays up past the token wait (its timer ends with the token frame)', async () => {
    const s = await session('Standard_Stream');
    const c = new SsmTestClient(s.url, { sizeOnHandshake: { cols: 80, rows: 24 } });
    await c.open(s.token);
    await until(() => c.handshakeComplete, show(c));
    await new Promise((r) => setTimeout(r, TOKEN_WAIT_MS + 500));
    c.input('echo $((6*7))x\n');
    await until(() => /42x/.test(c.text()), show(c));
    expect(c.closedOutput).toBeNull();
    c.input('exit\n');
    await c.closed;
    expect(c.closedOutput).toBe('');
  });

  it('runs an InteractiveCommands session command in a PTY', async () => {
    const s = await session('InteractiveCommands', { command: ['stty size; echo done-$((40+2))'] });
    const c = new SsmTestClient(s.url, { sizeOnHandshake: { cols: 77, rows: 33 } });
    await c.open(s.token);
    await until(() => c.closedOutput !== null, show(c));
    expect(c.text()).toMatch(/33 77/);
    expect(c.text()).toMatch(/done-42/);
    const props = (c.handshakeRequest as { RequestedClientActions: { ActionParameters: unknown }[] })
      .RequestedClientActions[0]!.ActionParameters;
    expect(props).toMatchObject({ SessionType: 'InteractiveCommands' });
  });

  it('refuses a bad token, a used token and a missing token frame with channel_closed', async () => {
    const s = await session('Standard_Stream');
    const bad = new SsmTestClient(s.url);
    await bad.open('nope.nope');
    await bad.closed;
    expect(bad.closedOutput).toMatch(/token/i);
    const ok = new SsmTestClient(s.url);
    await ok.open(s.token);
    await until(() => ok.handshakeComplete, show(ok));
    const reused = new SsmTestClient(s.url);
    await reused.open(s.token);
    await reused.closed;
    expect(reused.closedOutput).toMatch(/token/i);
    const junk = new SsmTestClient(s.url);
    await new Promise((r) => junk.ws.once('open', r));
    junk.ws.send(Buffer.from([1, 2, 3]));
    await junk.closed;
    expect(junk.closedOutput).toMatch(/OpenDataChannelInput/);
    ok.input('exit\n');
    await until(() => ok.closedOutput !== null, show(ok));
  });

  it('refuses a session whose device is offline with channel_closed naming the device', async () => {
    const base = `http://127.0.0.1:${server.port}`;
    const gone = await startDevice(base, TEST_KEY, 'ssm-gone-dev', ['--allow-exec']);
    const s = await session('Standard_Stream', {}, 'ssm-gone-dev');
    await gone.stop();
    await until(
      () => !server.registry.get('ssm-gone-dev'),
      () => 'device gone',
    );
    const c = new SsmTestClient(s.url);
    await c.open(s.token);
    await c.closed;
    expect(c.closedOutput).toMatch(/'ssm-gone-dev' is not connected/);
  });

  it('resends unacked output after the RTO and stops once it is acked', async () => {
    const s = await session('Standard_Stream');
    const c = new SsmTestClient(s.url, { sizeOnHandshake: { cols: 80, rows: 24 } });
    await c.open(s.token);
    await until(() => c.handshakeComplete, show(c));
    c.holdAcks = true;
    const from = c.state.expected;
    c.input('echo resend-me\n');
    await until(() => c.received(from).length >= 3, show(c));
    expect(new Set(c.received(from).map((f) => f.payload.toString())).size).toBe(1);
    expect(server.ssm.stats(s.id)!.unackedMessages).toBeGreaterThan(0);
    c.holdAcks = false;
    for (const f of c.delivered.filter((d) => d.seq >= from)) c.ack(f);
    await until(() => server.ssm.stats(s.id)!.unackedMessages === 0, show(c));
    const count = c.received(from).length;
    c.input('echo after\n');
    await until(() => /after\r?\n/.test(c.text()), show(c));
    expect(c.received(from).length).toBe(count);
    c.input('exit\n');
    await until(() => c.closedOutput !== null, show(c));
  });

  it('keeps output the client did not take (handler not ready) and delivers it in order once it does', async () => {
    const s = await session('Standard_Stream');
    const c = new SsmTestClient(s.url, { sizeOnHandshake: { cols: 80, rows: 24 } });
    c.acceptOutput = false;
    await c.open(s.token);
    await until(() => c.handshakeComplete, show(c));
    c.input('echo one; echo two; echo three\n');
    await until(() => c.frames.filter((f) => f.type === 'output_stream_data').length > 6, show(c));
    c.acceptOutput = true;
    await until(() => /one\r?\ntwo\r?\nthree/.test(c.text()), show(c));
    c.input('exit\n');
    await until(() => c.closedOutput !== null, show(c));
  });

  it('resumes on a new socket with a fresh token: unacked output is resent and numbering continues', async () => {
    const s = await session('Standard_Stream');
    const c1 = new SsmTestClient(s.url, { sizeOnHandshake: { cols: 80, rows: 24 } });
    await c1.open(s.token);
    await until(() => c1.handshakeComplete, show(c1));
    // Type after the shell's first prompt: a line typed before it is echoed before the prompt, which then lands in
    // front of the command's output ("# first-part") and the count below would miss it.
    await until(() => c1.text().length > 0, show(c1));
    c1.input('echo first-part\n');
    await until(() => /first-part\r?\n/.test(c1.text()), show(c1));
    // The client stops taking output, the socket drops mid-stream with output unacked.
    c1.acceptOutput = false;
    c1.input('for i in 1 2 3 4 5; do echo line-$i; done\n');
    await until(() => server.ssm.stats(s.id)!.unackedMessages > 0, show(c1));
    c1.close();
    await c1.closed;
    await until(
      () => server.ssm.stats(s.id)?.attached === false,
      () => 'detached',
    );
    const { expected } = c1.state;
    const c2 = new SsmTestClient(s.url, { resume: c1 });
    await c2.open(await freshToken(s.id));
    await until(() => /line-5\r?\n/.test(c2.text()), show(c2));
    c2.input('echo resumed; exit\n');
    await until(() => c2.closedOutput !== null, show(c2));
    const text = c2.text();
    for (const w of ['first-part', 'line-1', 'line-2', 'line-3', 'line-4', 'line-5', 'resumed'])
      expect(text.split(`\n${w}\r\n`).length - 1, `${w} once in ${JSON.stringify(text)}`).toBe(1);
    expect(c2.delivered[0]!.seq).toBe(expected);
  });

  it('resumes during closing on a second socket opened while the first is still open: the output and channel_closed go to it', async () => {
    const s = await session('Standard_Stream');
    const c1 = new SsmTestClient(s.url, { sizeOnHandshake: { cols: 80, rows: 24 } });
    await c1.open(s.token);
    await until(() => c1.handshakeComplete, show(c1));
    // Type after the first prompt (see the test above): typed earlier, the line's output follows the prompt, "# last-words".
    await until(() => c1.text().length > 0, show(c1));
    c1.acceptOutput = false; // the last output stays unacked: the session waits in closing
    c1.input('echo last-words; exit\n');
    await until(() => server.ssm.stats(s.id)?.state === 'closing', show(c1));
    const c2 = new SsmTestClient(s.url, { resume: c1 });
    await c2.open(await freshToken(s.id)); // uWS closes c1 (its close handler runs inside ws.end())
    await until(() => c2.closedOutput !== null, show(c2));
    expect(c2.closedOutput).toBe('');
    expect(c2.text()).toMatch(/\nlast-words\r\n/);
    await c1.closed;
    await c2.closed;
    await untilAsync(async () => (await statusOf(s.id)) === 'completed', 'completed');
  });

  it('stays bounded when the client stops acknowledging: the window holds at the cap and the device stalls', async () => {
    const s = await session('Standard_Stream');
    const c = new SsmTestClient(s.url, { sizeOnHandshake: { cols: 80, rows: 24 } });
    await c.open(s.token);
    await until(() => c.handshakeComplete, show(c));
    c.holdAcks = true;
    c.acceptOutput = false;
    c.input('yes flood | head -c 50000000; echo finished\n');
    await until(() => server.ssm.stats(s.id)!.unackedMessages >= WINDOW, show(c));
    // The window has been full for at least one RTO once the head was sent again: it still holds at the cap.
    const head = c.delivered.at(-1)!.seq + 1;
    await until(() => c.received(head).length >= 2, show(c));
    const st = server.ssm.stats(s.id)!;
    expect(st.unackedMessages).toBe(WINDOW);
    expect(st.unackedBytes).toBeLessThanOrEqual(WINDOW * (1024 + 120));
    expect(st.state).toBe('open');
    // The device channel holds at most its receive window: the device is stalled by its credit.
    expect(server.channels.stats().bufferedBytes).toBeLessThanOrEqual(256 * 1024);
    await a.call('DELETE', `/sessions/${s.id}`);
    await until(() => c.closedOutput !== null, show(c));
    expect(c.closedOutput).toMatch(/ended/);
  });
});

describe('hostile and broken frames', () => {
  it('drops frames that fail validation (short, wrong header length, trailing bytes, bad digest, huge) and carries on', async () => {
    const s = await session('Standard_Stream');
    const c = new SsmTestClient(s.url, { sizeOnHandshake: { cols: 80, rows: 24 } });
    await c.open(s.token);
    await until(() => c.handshakeComplete, show(c));
    await until(() => c.text().length > 0, show(c)); // the first prompt, as above
    const good = encodeFrame({
      type: 'input_stream_data',
      seq: 999,
      payloadType: 1,
      payload: Buffer.from('x'),
    });
    const wrongHl = Buffer.from(good);
    wrongHl.writeUInt32BE(4000, 0);
    const badDigest = Buffer.from(good);
    badDigest[120] = 0x79;
    for (const junk of [
      Buffer.from([1, 2, 3]),
      good.subarray(0, 118),
      wrongHl,
      Buffer.concat([good, Buffer.from('trailing')]),
      badDigest,
      Buffer.alloc(300 * 1024, 1),
      Buffer.from('{"not":"a frame"}'),
    ])
      c.ws.send(junk);
    c.input('echo still-here; exit\n');
    await until(() => c.closedOutput !== null, show(c));
    expect(c.text()).toMatch(/\nstill-here\r\n/);
  });
});

describe('handshake timeout', () => {
  it('closes with channel_closed naming the timeout when no HandshakeResponse comes', async () => {
    const s = await session('Standard_Stream');
    const ws = new WebSocket(s.url);
    const closed: string[] = [];
    ws.on('message', (d: Buffer) => {
      const f = decodeFrame(d);
      if (f.type === 'channel_closed') closed.push(f.payload.toString());
    });
    const gone = new Promise((res) => ws.once('close', res));
    await new Promise((res) => ws.once('open', res));
    // A client that sends its token and then nothing: no ack, no HandshakeResponse.
    ws.send(JSON.stringify({ TokenValue: s.token, ClientId: 'silent' }));
    await gone;
    expect(closed.join()).toMatch(new RegExp(`no handshake response within ${HANDSHAKE_MS} ms`));
  });
});
