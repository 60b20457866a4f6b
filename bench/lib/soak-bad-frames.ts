/**
 * BadFrameLoad (the soak's bad frames): BAD_FRAMES sent on a registered raw `ws` connection, each of which must be
 * answered by one `error` frame of the expected catalogue name, and one-shot connections the server must close.
 */
import { WebSocket, type RawData } from 'ws';
import { deviceRegister } from './register.js';
import { sleep, type Endpoint, type Json } from './soak-clients.js';
import { bucket, Counter, errorName, errText, type SoakCounters } from './soak-counters.js';

interface BadFrame {
  readonly kind: string;
  readonly data: string | Buffer;
  readonly binary: boolean;
  /** The error names (protocol/errors.ts) an answer may carry. */
  readonly expect: readonly string[];
}

const deep = (n: number): string => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
export const BAD_FRAMES: readonly BadFrame[] = [
  { kind: 'malformed-json', data: '{"type":"heartbeat","status":', binary: false, expect: ['INVALID_JSON'] },
  {
    kind: 'malformed-json-garbage',
    data: 'not json at all \u00e9\u4e2d ' + 'x'.repeat(4000),
    binary: false,
    expect: ['INVALID_JSON'],
  },
  {
    kind: 'wrong-types',
    data: '{"type":"heartbeat","status":42,"client_type":["device"],"client_id":{"x":1}}',
    binary: false,
    expect: ['VALIDATION'],
  },
  {
    kind: 'wrong-type-task',
    data: '{"type":"task","status":"continue","request":12345,"session_id":7}',
    binary: false,
    expect: ['VALIDATION'],
  },
  {
    kind: 'oversized-id',
    data: JSON.stringify({
      type: 'heartbeat',
      status: 'ok',
      client_type: 'device',
      client_id: 'x'.repeat(300),
    }),
    binary: false,
    expect: ['VALIDATION'],
  },
  {
    kind: 'oversized-session-id',
    data: JSON.stringify({ type: 'task', status: 'continue', request: 'r', session_id: 's'.repeat(5000) }),
    binary: false,
    expect: ['VALIDATION'],
  },
  {
    kind: 'invalid-utf8-binary',
    data: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]),
    binary: true,
    expect: ['INVALID_UTF8'],
  },
  { kind: 'deep-objects', data: deep(200), binary: false, expect: ['TOO_DEEP'] },
  {
    kind: 'deep-arrays',
    data: `{"type":"heartbeat","x":${'['.repeat(5000)}${']'.repeat(5000)}}`,
    binary: false,
    expect: ['TOO_DEEP'],
  },
  {
    kind: 'deep-arrays-binary-64k',
    data: Buffer.from('['.repeat(32768) + ']'.repeat(32768)),
    binary: true,
    expect: ['TOO_DEEP'],
  },
  { kind: 'not-an-object', data: '[1,2,3]', binary: false, expect: ['NOT_AN_OBJECT'] },
  {
    kind: 'unknown-type',
    data: '{"type":"no_such_type","status":"ok"}',
    binary: false,
    expect: ['VALIDATION', 'UNKNOWN_MESSAGE_TYPE'],
  },
  {
    kind: 'proto-key',
    data: '{"type":"heartbeat","status":"ok","__proto__":{"polluted":true}}',
    binary: false,
    expect: ['FORBIDDEN_KEY'],
  },
];

export class BadFrameLoad {
  /** Bad frames sent, by kind. */
  readonly sent = new Counter();
  /** `kind → answer` (the catalogue name of the error frame, or what else came back). */
  readonly answers = new Counter();
  /** One-shot connections, by `kind → outcome`. */
  readonly oneShots = new Counter();
  private ws: WebSocket | null = null;
  private outstanding: BadFrame[] = [];
  private timer: NodeJS.Timeout | null = null;
  private n = 0;
  private reconnecting = false;
  private readonly shots = new Set<Promise<void>>();

  constructor(
    private readonly ep: Endpoint,
    private readonly perS: number,
    private readonly k: SoakCounters,
  ) {}

  get unanswered(): number {
    return this.outstanding.length;
  }

  async connect(): Promise<void> {
    const ws = await this.open();
    this.outstanding = [];
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on('close', (code) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.k.stopping) return;
      this.k.errors.add(`bad-frame client closed by the server (code ${code})`);
      if (this.outstanding.length)
        this.k.errors.add('bad frames unanswered at a close', this.outstanding.length);
      this.outstanding = [];
      if (!this.reconnecting) {
        this.reconnecting = true;
        void sleep(1000)
          .then(() => this.connect())
          .catch((err: unknown) => this.k.errors.add(`bad-frame client reconnect: ${bucket(errText(err))}`))
          .finally(() => (this.reconnecting = false));
      }
    });
    this.ws = ws;
  }

  start(): void {
    if (this.perS <= 0) return;
    this.timer = setInterval(() => this.tick(), 1000 / this.perS);
  }

  /** Stops sending and waits (up to 5 s) for the last answers. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const end = Date.now() + 5000;
    while (this.outstanding.length > 0 && Date.now() < end) await sleep(20);
    await Promise.all([...this.shots]);
  }

  close(): void {
    this.ws?.close(1000);
  }

  /** A registered `ws` connection. */
  private open(register = true): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${this.ep.url}?token=${encodeURIComponent(this.ep.token)}`);
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error('bad-frame client: no registration within 10 s'));
      }, 10_000);
      ws.on('error', () => undefined);
      ws.once('close', (code) => {
        clearTimeout(timer);
        reject(new Error(`closed before registering (code ${code})`));
      });
      ws.once('open', () => {
        if (!register) {
          clearTimeout(timer);
          return resolve(ws);
        }
        ws.once('message', (data: RawData) => {
          clearTimeout(timer);
          const m = JSON.parse(rawText(data)) as Json;
          if (m.type === 'heartbeat' && m.status === 'ok') resolve(ws);
          else reject(new Error(`registration refused: ${String(m.error)}`));
        });
        ws.send(JSON.stringify(deviceRegister(`soak-bad-${this.n}-${Date.now()}`)));
      });
    });
  }

  private tick(): void {
    const n = this.n++;
    if (n % 10 === 9) {
      const p = this.oneShot(n % 20 === 9 ? 'bad-first-frame' : 'invalid-utf8-text').catch((err: unknown) =>
        this.k.errors.add(`bad-frame one-shot: ${bucket(errText(err))}`),
      );
      this.shots.add(p);
      void p.finally(() => this.shots.delete(p));
      return;
    }
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const f = BAD_FRAMES[n % BAD_FRAMES.length]!;
    this.outstanding.push(f);
    this.sent.add(f.kind);
    ws.send(f.data, { binary: f.binary });
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    const f = this.outstanding.shift();
    let answer: string;
    try {
      const m = JSON.parse(rawText(data)) as Json;
      answer =
        m.type === 'error'
          ? errorName(typeof m.error === 'string' ? m.error : '')
          : `a ${String(m.type)} frame`;
    } catch {
      answer = isBinary ? 'a binary frame' : 'an undecodable frame';
    }
    if (f === undefined) {
      this.k.errors.add(`bad-frame client: unsolicited ${answer}`);
      return;
    }
    this.answers.add(`${f.kind} → ${answer}`);
    if (!/^[A-Z0-9_]+$/.test(answer))
      this.k.errors.add(`bad frame ${f.kind} was answered with ${answer}, not an error`);
    else if (!f.expect.includes(answer))
      this.k.errors.add(`bad frame ${f.kind} was answered ${answer}, expected ${f.expect.join(' or ')}`);
  }

  /** A fresh connection that must be closed by the server: `[close code]` is the expected outcome. */
  private async oneShot(kind: 'bad-first-frame' | 'invalid-utf8-text'): Promise<void> {
    const ws = await this.open(kind === 'invalid-utf8-text');
    const code = await new Promise<number | 'timeout'>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), 5000);
      ws.once('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
      if (kind === 'bad-first-frame') ws.send('{"type":"register","status":');
      else ws.send(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]), { binary: false });
    });
    if (code === 'timeout') ws.terminate();
    this.oneShots.add(`${kind} → ${code === 'timeout' ? 'not closed within 5 s' : `close ${code}`}`);
    // README: uWS validates text frames itself and drops one with invalid UTF-8 without a close frame (1006).
    const expected = kind === 'bad-first-frame' ? [4000] : [1006, 1007];
    if (code === 'timeout' || !expected.includes(code))
      this.k.errors.add(`one-shot ${kind}: expected close ${expected.join(' or ')}, got ${code}`);
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return (Buffer.isBuffer(data) ? data : Buffer.from(data)).toString('utf8');
}
