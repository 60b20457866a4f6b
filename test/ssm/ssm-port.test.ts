/**
 * Port sessions over the SSM data channel end to end: the conformance client plays the plugin in basic mode (one
 * connection at a time, Flag DisconnectToPort between them), stdio mode and smux mode (its own smux v1 client,
 * several streams at once), against a real aipd and a real device that reaches a web server the test runs.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { api, startDevice, until as untilAsync, type Api, type DeviceProc } from '../remote/helpers.js';
import { SsmTestClient, until } from './ssm-test-client.js';

let server: Awaited<ReturnType<typeof startTestServer>>;
let device: DeviceProc;
let a: Api;
let web: http.Server;
let webPort: number;
let closedPort: number;
let webConnections = 0;
/** The device's connections to the web server that are open now. */
const openWeb = new Set<net.Socket>();
const DEV = 'ssm-port-dev';
const BIG = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7 + (i >> 9)) & 0xff));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  web = http.createServer((req, res) => {
    if (req.url === '/big') return res.end(BIG);
    res.end(`page ${req.url}`);
  });
  web.on('connection', (sock: net.Socket) => {
    webConnections++;
    openWeb.add(sock);
    sock.once('close', () => openWeb.delete(sock));
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  webPort = (web.address() as AddressInfo).port;
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  server = await startTestServer();
  const base = `http://127.0.0.1:${server.port}`;
  a = api(base, TEST_KEY);
  device = await startDevice(base, TEST_KEY, DEV, [
    '--allow-port',
    String(webPort),
    '--allow-port',
    String(closedPort),
  ]);
}, 60_000);

afterAll(async () => {
  await device?.stop();
  await server?.close();
  await new Promise((r) => web?.close(r));
});

async function portSession(
  port: number,
  extra: Record<string, string[]> = {},
): Promise<{ id: string; url: string; token: string }> {
  const r = await a.call('POST', '/sessions', {
    agent_id: DEV,
    session_type: 'Port',
    parameters: { portNumber: [String(port)], ...extra },
  });
  expect(r.status, r.text).toBe(201);
  return { id: r.json.id, url: r.json.ssm_stream_url, token: r.json.token_value };
}

const show = (c: SsmTestClient) => (): string =>
  `output=${JSON.stringify(c.text().slice(0, 300))} closed=${String(c.closedOutput)} flags=${c.flags.join()}`;

const BASIC = { ssmAgentVersion: ['3.0.0.0'] };

describe('Port, basic mode (AgentVersion 3.0.0.0)', () => {
  it('forwards one connection at a time, a new device connection after each DisconnectToPort', async () => {
    const s = await portSession(webPort, { ...BASIC, localPortNumber: ['0'] });
    const before = webConnections;
    const c = new SsmTestClient(s.url);
    await c.open(s.token);
    await until(() => c.handshakeComplete, show(c));
    expect(c.handshakeRequest).toMatchObject({
      AgentVersion: '3.0.0.0',
      RequestedClientActions: [
        {
          ActionType: 'SessionType',
          ActionParameters: {
            SessionType: 'Port',
            Properties: { portNumber: String(webPort), localPortNumber: '0', type: 'LocalPortForwarding' },
          },
        },
      ],
    });
    c.input('GET /one HTTP/1.0\r\n\r\n');
    await until(() => /page \/one$/.test(c.text()), show(c));
    c.flag(1);
    c.output = Buffer.alloc(0);
    c.input('GET /two HTTP/1.0\r\n\r\n');
    await until(() => /page \/two$/.test(c.text()), show(c));
    expect(webConnections - before).toBe(2);
    expect(c.flags).toEqual([]); // basic mode never sends a Flag: the plugin would write it into the stream
    c.flag(2);
    await c.closed;
    await untilAsync(
      async () => (await a.call('GET', `/sessions/${s.id}`)).json.status === 'cancelled',
      'the session to end on TerminateSession',
    );
  });

  it('repeated DisconnectToPort back to back leaves one device connection open, and the next data goes through', async () => {
    const s = await portSession(webPort, BASIC);
    const c = new SsmTestClient(s.url);
    await c.open(s.token);
    await until(() => c.handshakeComplete, show(c));
    await until(
      () => openWeb.size === 1,
      () => `open=${openWeb.size}`,
    );
    for (let i = 0; i < 5; i++) c.flag(1);
    c.input('GET /after-flags HTTP/1.0\r\n\r\n');
    await until(() => /page \/after-flags$/.test(c.text()), show(c));
    // HTTP/1.0: the web server closed the connection that answered; every earlier one was closed by aipd.
    await until(
      () => openWeb.size === 0,
      () => `open=${openWeb.size}`,
    );
    c.flag(2);
    await c.closed;
  });

  it('a second plugin (another ClientId) takes a port session over; the first is told so', async () => {
    const s = await portSession(webPort, BASIC);
    const first = new SsmTestClient(s.url);
    await first.open(s.token);
    await until(() => first.handshakeComplete, show(first));
    const fresh = await a.call('POST', `/sessions/${s.id}/token`);
    expect(fresh.status, fresh.text).toBe(200);
    const second = new SsmTestClient(s.url);
    expect(second.clientId).not.toBe(first.clientId);
    await second.open(fresh.json.token_value as string);
    await first.closed;
    expect(first.closedOutput).toBe(
      `Another session-manager-plugin connected to port session '${s.id}' and took it over`,
    );
    await until(() => second.handshakeComplete, show(second));
    expect(second.closedOutput).toBeNull();
    second.close();
    await a.call('DELETE', `/sessions/${s.id}`);
  });

  it('a refused port: channel_closed saying the connection failed', async () => {
    const s = await portSession(closedPort, BASIC);
    const c = new SsmTestClient(s.url);
    await c.open(s.token);
    await c.closed;
    expect(c.closedOutput).toMatch(new RegExp(`Connection to port ${closedPort} on the device failed`));
  });
});

describe('Port, stdio forwarding (forwardingType other than LocalPortForwarding)', () => {
  it('forwards one connection and closes the channel when the device side ends', async () => {
    const s = await portSession(webPort, { forwardingType: ['Stdio'] });
    const c = new SsmTestClient(s.url);
    await c.open(s.token);
    await until(() => c.handshakeComplete, show(c));
    c.input('GET /stdio HTTP/1.0\r\n\r\n');
    await until(() => c.closedOutput !== null, show(c));
    expect(c.text()).toMatch(/page \/stdio$/);
    expect(c.closedOutput).toBe('');
  });
});

/** The plugin's side of smux v1 over the conformance client: streams 3, 5, 7…, the byte stream cut unaligned. */
class SmuxClient {
  private nextId = 3;
  private pending = Buffer.alloc(0);
  readonly data = new Map<number, Buffer>();
  readonly fins = new Set<number>();

  constructor(private readonly c: SsmTestClient) {
    c.onData = (b) => this.receive(b);
  }

  open(): number {
    const id = this.nextId;
    this.nextId += 2;
    this.data.set(id, Buffer.alloc(0));
    this.send(0, id);
    return id;
  }

  write(id: number, data: string): void {
    this.send(2, id, Buffer.from(data));
  }

  /** One smux frame, cut into 7-byte-offset pieces so frames straddle data-channel messages. */
  private send(cmd: number, id: number, data = Buffer.alloc(0)): void {
    const h = Buffer.alloc(8);
    h[0] = 1;
    h[1] = cmd;
    h.writeUInt16LE(data.length, 2);
    h.writeUInt32LE(id, 4);
    const frame = Buffer.concat([h, data]);
    this.c.input(frame.subarray(0, 5));
    if (frame.length > 5) this.c.input(frame.subarray(5));
  }

  private receive(b: Buffer): void {
    this.pending = Buffer.concat([this.pending, b]);
    while (this.pending.length >= 8) {
      const len = this.pending.readUInt16LE(2);
      if (this.pending.length < 8 + len) return;
      const cmd = this.pending[1]!;
      const id = this.pending.readUInt32LE(4);
      const body = this.pending.subarray(8, 8 + len);
      if (this.pending[0] !== 1) throw new Error(`smux version ${this.pending[0]}`);
      if (cmd === 2) this.data.set(id, Buffer.concat([this.data.get(id) ?? Buffer.alloc(0), body]));
      if (cmd === 1) this.fins.add(id);
      this.pending = this.pending.subarray(8 + len);
    }
  }
}

describe('Port, smux mode (the default AgentVersion)', () => {
  it('serves several concurrent streams, each its own TCP connection on the device', async () => {
    const s = await portSession(webPort);
    const c = new SsmTestClient(s.url);
    await c.open(s.token);
    await until(() => c.handshakeComplete, show(c));
    expect((c.handshakeRequest as { AgentVersion: string }).AgentVersion).toBe('3.3.40.0');
    const mux = new SmuxClient(c);
    const before = webConnections;
    const ids = [mux.open(), mux.open(), mux.open(), mux.open()];
    ids.forEach((id, i) => mux.write(id, `GET ${i === 0 ? '/big' : `/p${i}`} HTTP/1.0\r\n\r\n`));
    await until(
      () => ids.every((id) => mux.fins.has(id)),
      () => `fins ${[...mux.fins].join()}`,
      30_000,
    );
    const bodies = ids.map((id) => mux.data.get(id)!);
    const big = bodies[0]!;
    expect(sha(big.subarray(big.length - BIG.length))).toBe(sha(BIG));
    for (let i = 1; i < ids.length; i++) expect(bodies[i]!.toString()).toMatch(new RegExp(`page /p${i}$`));
    expect(webConnections - before).toBe(ids.length);
    expect(c.flags).toEqual([]);
    c.flag(2);
    await c.closed;
  });

  it('a refused port: the stream gets a FIN and the client a Flag ConnectToPortError (3)', async () => {
    const s = await portSession(closedPort);
    const c = new SsmTestClient(s.url);
    await c.open(s.token);
    await until(() => c.handshakeComplete, show(c));
    const mux = new SmuxClient(c);
    const id = mux.open();
    mux.write(id, 'hello');
    await until(() => c.flags.includes(3) && mux.fins.has(id), show(c));
    expect(c.closedOutput).toBeNull();
    c.flag(2);
    await c.closed;
  });

  it('drops an invalid smux stream with channel_closed', async () => {
    const s = await portSession(webPort);
    const c = new SsmTestClient(s.url);
    await c.open(s.token);
    await until(() => c.handshakeComplete, show(c));
    c.input(Buffer.from([9, 0, 0, 0, 3, 0, 0, 0]));
    await until(() => c.closedOutput !== null, show(c));
    expect(c.closedOutput).toMatch(/smux version 9/);
  });
});
