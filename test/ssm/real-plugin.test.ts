/**
 * AWS's real `session-manager-plugin` against aipd's SSM data channel, end to end: a real aipd (uWS on
 * 127.0.0.1, port 0), a real `aipd device` child process serving PTYs and port channels, sessions created through
 * real HTTP `POST /sessions`, and the plugin binary named by env SSM_PLUGIN_BIN spawned as the AWS CLI does.
 *
 * Skipped when SSM_PLUGIN_BIN is not set. To run it:
 *   SSM_PLUGIN_BIN=/path/to/session-manager-plugin npx vitest run test/ssm/real-plugin.test.ts
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { api, startDevice, until, type Api, type DeviceProc } from '../remote/helpers.js';
import {
  httpGet,
  httpPost,
  PLUGIN_BIN,
  startPlugin,
  stopPlugins,
  TcpProxy,
  type StartSessionResponse,
} from './plugin-process.js';

const SKIP_REASON = 'skipped: SSM_PLUGIN_BIN not set (point it at a session-manager-plugin binary to run)';
if (!PLUGIN_BIN) console.warn(`test/ssm/real-plugin.test.ts ${SKIP_REASON}`);

const DEV = 'ssm-plugin-dev';

/** The plugin's two local port-forwarding implementations, and how a Port session asks aipd for each. */
type PortMode = 'mux' | 'basic';

/**
 * The one place that says how a Port session selects the plugin's forwarding mode (SSM-CONTRACT.md): the plugin
 * multiplexes with smux when the handshake's AgentVersion is above 3.0.196.0 (the server's default) and forwards
 * one connection at a time at or below it; a session picks its AgentVersion with the parameter `ssmAgentVersion`.
 */
function portParameters(mode: PortMode, port: number): Record<string, string[]> {
  const base = { portNumber: [String(port)], localPortNumber: ['0'] };
  return mode === 'mux' ? base : { ...base, ssmAgentVersion: ['3.0.0.0'] };
}

/** A deterministic body of `n` bytes, so a page fetched through the plugin can be checked byte for byte. */
function bigBody(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8)) & 0xff;
  return b;
}
const BIG = bigBody(300_000);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
/**
 * A line of shell output: at the start of a line, or after the prompt (keystrokes typed ahead are echoed by the
 * terminal before the shell prints its prompt, so the answer can share the prompt's line).
 */
const outputLine = (text: string, flags = ''): RegExp => new RegExp(`(?:^|[#$] )${text}\\r?$`, `m${flags}`);

let server: Awaited<ReturnType<typeof startTestServer>>;
let device: DeviceProc;
let root: string;
let base: string;
let a: Api;
let web: http.Server;
let webPort: number;
/** A port the device may connect to but where nothing listens. */
let deadPort: number;

/** A loopback port that was free a moment ago (listened on, then closed). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Creates a typed session over HTTP and answers what the plugin is given (the StartSession response). */
async function startSession(
  sessionType: string,
  parameters?: Record<string, string[]>,
  on: { api: Api; device: string } = { api: a, device: DEV },
): Promise<StartSessionResponse & { expiresAt: number }> {
  const r = await on.api.call('POST', '/sessions', {
    agent_id: on.device,
    session_type: sessionType,
    ...(parameters ? { parameters } : {}),
  });
  expect(r.status, r.text).toBe(201);
  expect(typeof r.json.ssm_stream_url, r.text).toBe('string');
  expect(typeof r.json.token_value, r.text).toBe('string');
  return {
    SessionId: r.json.id,
    StreamUrl: r.json.ssm_stream_url,
    TokenValue: r.json.token_value,
    expiresAt: Date.parse(r.json.token_expires_at),
  };
}

const exitingLine = (id: string): RegExp => new RegExp(`Exiting session with sessionId: ${id}\\.`);
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe.skipIf(!PLUGIN_BIN)(
  PLUGIN_BIN
    ? 'the real session-manager-plugin against aipd'
    : `the real session-manager-plugin (${SKIP_REASON})`,
  () => {
    const bin = PLUGIN_BIN!;

    beforeAll(async () => {
      root = await mkdtemp(path.join(os.tmpdir(), 'aipd-ssm-'));
      web = http.createServer((req, res) => {
        if (req.method === 'POST') {
          const h = createHash('sha256');
          let n = 0;
          req.on('data', (c: Buffer) => {
            h.update(c);
            n += c.length;
          });
          req.on('end', () => res.end(`${n} ${h.digest('hex')}`));
        } else if (req.url === '/big') {
          res.setHeader('content-type', 'application/octet-stream');
          res.end(BIG);
        } else res.end(`hello from the device's web server: ${req.url}`);
      });
      await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
      webPort = (web.address() as AddressInfo).port;
      deadPort = await freePort();
      server = await startTestServer();
      base = `http://127.0.0.1:${server.port}`;
      a = api(base, TEST_KEY);
      device = await startDevice(base, TEST_KEY, DEV, [
        '--root',
        root,
        '--allow-exec',
        '--allow-port',
        String(webPort),
      ]);
    }, 60_000);

    afterEach(async () => {
      await stopPlugins();
    });

    afterAll(async () => {
      await stopPlugins();
      await device?.stop();
      await server?.close();
      await new Promise((r) => web?.close(r));
      if (root) await rm(root, { recursive: true, force: true });
    });

    it('--version prints 1.2.0.0 (the plugin the protocol notes were read from)', () => {
      expect(execFileSync(bin, ['--version'], { timeout: 10_000 }).toString().trim()).toBe('1.2.0.0');
    });

    it('Standard_Stream: a shell runs `echo hello; exit 3`, and the plugin exits 0 after channel_closed', async () => {
      const s = await startSession('Standard_Stream');
      const p = startPlugin(bin, s);
      await p.waitFor(
        new RegExp(`Starting session with SessionId: ${escape(s.SessionId)}`),
        'the start line',
      );
      p.write('echo hello; exit 3\n');
      await p.waitFor(/hello\r?\n/, '`hello` from the shell');
      const exit = await p.waitExit('the plugin to exit after the shell ended');
      expect(exit, p.describe()).toEqual({ code: 0, signal: null });
      expect(p.out()).toMatch(exitingLine(escape(s.SessionId)));
      await until(
        async () => (await a.call('GET', `/sessions/${s.SessionId}`)).json.status === 'completed',
        'the session to be completed',
      );
    });

    it('Standard_Stream: the shell sees the 300×100 size the plugin reports for a non-terminal stdout', async () => {
      const s = await startSession('Standard_Stream');
      const p = startPlugin(bin, s);
      p.write('stty size; exit\n');
      await p.waitFor(/100 300/, '`stty size` to print 100 300');
      const exit = await p.waitExit('the plugin to exit');
      expect(exit.code, p.describe()).toBe(0);
    });

    it('Standard_Stream: 30000 lines of output arrive complete and in order', async () => {
      const s = await startSession('Standard_Stream');
      const p = startPlugin(bin, s);
      p.write('seq 1 30000; echo seq-$((1+1))-done; exit\n');
      await p.waitFor(/seq-2-done/, 'the end of the output', 60_000);
      expect((await p.waitExit('the plugin to exit')).code, p.describe()).toBe(0);
      const numbers = p
        .out()
        .split(/\r?\n/)
        // The first line may follow the prompt (see outputLine).
        .map((l) => l.replace(/^[#$] /, ''))
        .filter((l) => /^\d+\r?$/.test(l))
        .map((l) => Number(l.trim()));
      expect(numbers.length).toBe(30000);
      expect(numbers.every((n, i) => n === i + 1)).toBe(true);
    }, 90_000);

    it('Standard_Stream: keystrokes sent before the shell is ready run once each, in order', async () => {
      // Written at once, before the handshake: whatever the plugin resends while the PTY opens must not run twice.
      const s = await startSession('Standard_Stream');
      const p = startPlugin(bin, s);
      p.write('echo $((40+2))\n');
      await p.waitFor(outputLine('42'), 'the first command to run');
      p.write('echo $((50+5)); exit\n');
      await p.waitFor(outputLine('55'), 'the second command to run');
      expect((await p.waitExit('the plugin to exit')).code, p.describe()).toBe(0);
      expect(p.out().match(outputLine('42', 'g'))?.length, p.describe()).toBe(1);
      expect(p.out().match(outputLine('55', 'g'))?.length, p.describe()).toBe(1);
      expect(p.out().search(outputLine('42'))).toBeLessThan(p.out().search(outputLine('55')));
    });

    it('InteractiveCommands: SIGINT to the plugin reaches the command as ^C (0x03) in its PTY', async () => {
      const s = await startSession('InteractiveCommands', {
        command: ["trap 'echo got-int; exit 0' INT; echo armed; while :; do sleep 1; done"],
      });
      const p = startPlugin(bin, s);
      await p.waitFor(/armed/, 'the command to arm its trap');
      p.signal('SIGINT');
      await p.waitFor(/got-int/, 'the trap to run');
      const exit = await p.waitExit('the plugin to exit after the command ended');
      expect(exit, p.describe()).toEqual({ code: 0, signal: null });
      expect(p.out()).toMatch(exitingLine(escape(s.SessionId)));
    });

    for (const mode of ['mux', 'basic'] as const) {
      it(`Port (${mode}): pages of the device's web server come through the plugin's local port`, async () => {
        const s = await startSession('Port', portParameters(mode, webPort));
        const p = startPlugin(bin, s);
        const m = await p.waitFor(
          new RegExp(`Port (\\d+) opened for sessionId ${escape(s.SessionId)}`),
          'the plugin to open its local port',
        );
        const local = Number(m[1]);
        if (mode === 'mux') {
          expect(p.out(), 'mux mode prints its wait line').toMatch(/Waiting for connections/);
          // Several connections at once, each its own smux stream, one of them 300 kB.
          const upload = bigBody(200_000).reverse();
          const [posted, ...pages] = await Promise.all([
            httpPost(local, '/upload', upload),
            httpGet(local, '/big'),
            ...Array.from({ length: 5 }, (_, i) => httpGet(local, `/page/${i}`)),
          ]);
          expect(posted.body.toString(), 'the device received the upload whole').toBe(
            `${upload.length} ${sha(upload)}`,
          );
          expect(pages[0].status).toBe(200);
          expect(pages[0].body.length).toBe(BIG.length);
          expect(sha(pages[0].body)).toBe(sha(BIG));
          for (let i = 1; i < pages.length; i++) {
            expect(pages[i]!.status).toBe(200);
            expect(pages[i]!.body.toString()).toBe(`hello from the device's web server: /page/${i - 1}`);
          }
        } else {
          // Basic forwarding serves one local client at a time: connections one after another, each of them a new
          // TCP connection on the device (the plugin sends DisconnectToPort when the previous one closes).
          expect(p.out(), 'basic mode does not print the mux wait line').not.toMatch(
            /Waiting for connections/,
          );
          const first = await httpGet(local, '/page/a');
          expect(first.body.toString()).toBe(`hello from the device's web server: /page/a`);
          const big = await httpGet(local, '/big');
          expect(big.body.length).toBe(BIG.length);
          expect(sha(big.body)).toBe(sha(BIG));
          const upload = bigBody(100_000).reverse();
          const posted = await httpPost(local, '/upload', upload);
          expect(posted.body.toString(), 'the device received the upload whole').toBe(
            `${upload.length} ${sha(upload)}`,
          );
          const third = await httpGet(local, '/page/c');
          expect(third.body.toString()).toBe(`hello from the device's web server: /page/c`);
        }
        // Ctrl-C: the plugin sends Flag TerminateSession (2) and exits 0; the session ends `cancelled` (docs/ssm.md).
        p.signal('SIGINT');
        const exit = await p.waitExit('the plugin to exit on SIGINT');
        expect(exit, p.describe()).toEqual({ code: 0, signal: null });
        expect(p.out()).toMatch(exitingLine(escape(s.SessionId)));
        await until(
          async () => (await a.call('GET', `/sessions/${s.SessionId}`)).json.status === 'cancelled',
          'the session to be cancelled by TerminateSession',
        );
      });
    }

    it('Port (mux) to a port where nothing listens: the plugin prints its ConnectToPortError hint', async () => {
      const s = await startSession('Port', portParameters('mux', deadPort));
      const p = startPlugin(bin, s);
      const m = await p.waitFor(
        new RegExp(`Port (\\d+) opened for sessionId ${escape(s.SessionId)}`),
        'the plugin to open its local port',
      );
      // The local connection is closed without an answer (the smux stream gets a FIN).
      await expect(httpGet(Number(m[1]), '/')).rejects.toThrow();
      await p.waitFor(/Connection to destination port failed, check SSM Agent logs\./, 'the hint (Flag 3)');
      expect(p.running, 'the plugin stays up for more connections').toBe(true);
    });

    it('Port with a forwardingType other than LocalPortForwarding: the plugin forwards its stdin and stdout', async () => {
      const s = await startSession('Port', { portNumber: [String(webPort)], forwardingType: ['Stdio'] });
      const p = startPlugin(bin, s);
      p.write('GET /stdio HTTP/1.0\r\nHost: device\r\n\r\n');
      await p.waitFor(/hello from the device's web server: \/stdio/, 'the page on stdout');
      expect(p.out()).toMatch(/HTTP\/1\.[01] 200 OK/);
      expect(p.out()).not.toMatch(/opened for sessionId/);
      // stdin EOF ends the plugin (it tells the server nothing).
      p.proc.stdin.end();
      expect((await p.waitExit('the plugin to exit on stdin EOF')).code, p.describe()).toBe(0);
    });

    it('Standard_Stream: after the connection drops, the plugin resumes with a ResumeSession token and the shell goes on', async () => {
      const s = await startSession('Standard_Stream');
      const proxy = await TcpProxy.start(server.port);
      // A stand-in for the SSM API: ResumeSession answers a fresh aipd token for the session.
      const calls: string[] = [];
      const ssmApi = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          const target = String(req.headers['x-amz-target']);
          calls.push(target);
          if (target !== 'AmazonSSM.ResumeSession') {
            res.statusCode = 400;
            res.end(JSON.stringify({ __type: 'InvalidAction', message: target }));
            return;
          }
          const sid = (JSON.parse(body) as { SessionId: string }).SessionId;
          a.call('POST', `/sessions/${sid}/token`).then(
            (t) => {
              res.setHeader('content-type', 'application/x-amz-json-1.1');
              res.end(JSON.stringify({ SessionId: sid, StreamUrl: '', TokenValue: t.json.token_value }));
            },
            () => {
              res.statusCode = 500;
              res.end('{}');
            },
          );
        });
      });
      await new Promise<void>((r) => ssmApi.listen(0, '127.0.0.1', r));
      try {
        const viaProxy = s.StreamUrl.replace(`:${server.port}/`, `:${proxy.port}/`);
        const endpoint = `http://127.0.0.1:${(ssmApi.address() as AddressInfo).port}`;
        const p = startPlugin(bin, { ...s, StreamUrl: viaProxy }, endpoint);
        p.write('echo before-$((1+1))\n');
        await p.waitFor(outputLine('before-2'), 'the shell to answer before the cut');
        proxy.cut();
        await until(() => proxy.connections >= 2, 'the plugin to reconnect', 20_000);
        expect(calls).toContain('AmazonSSM.ResumeSession');
        p.write('echo after-$((2+1)); exit\n');
        await p.waitFor(outputLine('after-3'), 'the same shell to answer after the resume');
        expect((await p.waitExit('the plugin to exit after the shell ended')).code, p.describe()).toBe(0);
        expect(p.out()).toMatch(exitingLine(escape(s.SessionId)));
        expect(
          p.out().match(outputLine('before-2', 'g'))?.length,
          'no output repeated after the resume',
        ).toBe(1);
      } finally {
        await stopPlugins();
        await proxy.close();
        await new Promise((r) => ssmApi.close(r));
      }
    });

    it('a used token and a token of another session: the plugin prints the server’s reason and exits', async () => {
      const one = await startSession('Standard_Stream');
      const two = await startSession('Standard_Stream');
      // `one`'s token offered for `two`: refused, and used up by the attempt.
      const foreign = startPlugin(bin, { ...two, TokenValue: one.TokenValue });
      const refusal = new RegExp(`SessionId: ${escape(two.SessionId)} : (.+)`);
      const m1 = await foreign.waitFor(refusal, 'the refusal of a foreign token');
      expect(m1[1], 'the reason names the token').toMatch(/token/i);
      expect((await foreign.waitExit('the plugin to exit after the refusal')).code, foreign.describe()).toBe(
        0,
      );
      // `one`'s token again, now for its own session: used, refused.
      const reused = startPlugin(bin, one);
      const m2 = await reused.waitFor(
        new RegExp(`SessionId: ${escape(one.SessionId)} : (.+)`),
        'the refusal of a used token',
      );
      expect(m2[1], 'the reason names the token').toMatch(/token/i);
      expect((await reused.waitExit('the plugin to exit after the refusal')).code, reused.describe()).toBe(0);
      // The refusals did not end the session: a fresh token opens its shell.
      const fresh = await a.call('POST', `/sessions/${one.SessionId}/token`);
      expect(fresh.status, fresh.text).toBeLessThan(300);
      const ok = startPlugin(bin, { ...one, TokenValue: fresh.json.token_value });
      ok.write('echo fresh-token-works; exit\n');
      await ok.waitFor(/fresh-token-works\r?\n/, 'the shell opened with a fresh token');
      expect((await ok.waitExit('the plugin to exit after the shell ended')).code, ok.describe()).toBe(0);
      expect(ok.out()).toMatch(exitingLine(escape(one.SessionId)));
    });

    it('an expired token: the plugin prints the server’s reason and exits', async () => {
      // A second server whose tokens live 300 ms, with its own device.
      const short = await startTestServer({ streamTokenTtlMs: 300 });
      const shortBase = `http://127.0.0.1:${short.port}`;
      let dev: DeviceProc | undefined;
      try {
        dev = await startDevice(shortBase, TEST_KEY, 'ssm-short-dev', ['--allow-exec']);
        const s = await startSession('Standard_Stream', undefined, {
          api: api(shortBase, TEST_KEY),
          device: 'ssm-short-dev',
        });
        expect(Number.isFinite(s.expiresAt)).toBe(true);
        await until(() => Date.now() > s.expiresAt + 50, 'the token to expire', 5_000);
        const p = startPlugin(bin, s);
        const m = await p.waitFor(
          new RegExp(`SessionId: ${escape(s.SessionId)} : (.+)`),
          'the refusal of an expired token',
        );
        expect(m[1], 'the reason names the token').toMatch(/token/i);
        expect((await p.waitExit('the plugin to exit after the refusal')).code, p.describe()).toBe(0);
      } finally {
        await stopPlugins();
        await dev?.stop();
        await short.close();
      }
    }, 60_000);
  },
);
