/**
 * The two connections of `bench/stall.ts` (scenario `stall-deep-frame`): the attacker, whose body runs in a child
 * process and sends the deep frames, with the orchestrator's handle on that child; and the healthy client, which does
 * heartbeat round trips back to back and records their times.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { buildFrame, RawWs } from '../../src/cli/loadtest-ws.js';
import { stopChild, track } from './proc.js';
import { deviceRegister } from './register.js';

/** The API key stall.ts starts aipd with, and both connections present. */
export const API_KEY = 'bench-key';

export type ToAttacker = { t: 'prepare'; bytes: number; binary: boolean } | { t: 'fire' };
export type FromAttacker =
  | { t: 'ready' }
  | { t: 'prepared'; bytes: number; build_ms: number }
  | { t: 'answered'; written_ms: number; answered_ms: number; answer: string; closed: boolean }
  | { t: 'fatal'; message: string };

// ---------------------------------------------------------------------------------------------------------------
// The attacker (child process) and the orchestrator's handle on it

/** One masked (zero key) text frame whose payload is `bytes` bytes of `[` then `]`, built without a copy. */
function deepFrame(bytes: number, binary: boolean): Buffer {
  const head = 14;
  const buf = Buffer.allocUnsafe(head + bytes);
  buf[0] = binary ? 0x82 : 0x81; // FIN + binary or text
  buf[1] = 0x80 | 127;
  buf.writeUInt32BE(Math.floor(bytes / 2 ** 32), 2);
  buf.writeUInt32BE(bytes >>> 0, 6);
  buf.writeUInt32BE(0, 10); // zero mask key
  const half = Math.floor(bytes / 2);
  buf.fill(0x5b, head, head + half);
  buf.fill(0x5d, head + half);
  return buf;
}

/** The attacker child process's body: registers as a device on `port`, then builds and sends frames as told. */
export async function attacker(port: number): Promise<void> {
  const send = (m: FromAttacker): void => {
    process.send?.(m);
  };
  process.on('disconnect', () => process.exit(0));
  setTimeout(() => process.exit(3), 30 * 60_000).unref();
  const ws = await RawWs.connect({ host: '127.0.0.1', port, path: `/ws?token=${API_KEY}` });
  let onText: ((text: string) => void) | null = null;
  let closed = false;
  ws.onMessage = (data) => onText?.(typeof data === 'string' ? data : data.toString('utf8'));
  ws.onClose = () => {
    closed = true;
    onText?.('(connection closed)');
  };
  const next = (timeoutMs: number): Promise<string> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        onText = null;
        resolve('(no answer)');
      }, timeoutMs);
      onText = (text) => {
        clearTimeout(t);
        onText = null;
        resolve(text);
      };
    });
  const registered = next(10_000);
  ws.send(JSON.stringify(deviceRegister('stall-attacker')), false);
  const reg = await registered;
  if (!reg.includes('"heartbeat"')) {
    send({ t: 'fatal', message: `attacker registration failed: ${reg.slice(0, 200)}` });
    return;
  }
  let frame: Buffer | null = null;
  process.on('message', (m: ToAttacker) => {
    if (m.t === 'prepare') {
      frame = null;
      const t0 = performance.now();
      frame = deepFrame(m.bytes, m.binary);
      send({ t: 'prepared', bytes: m.bytes, build_ms: performance.now() - t0 });
    } else if (m.t === 'fire' && frame) {
      const f = frame;
      frame = null;
      const t0 = performance.now();
      const answer = next(120_000);
      ws.sendFrames([f]);
      let written = -1;
      const poll = setInterval(() => {
        if (written < 0 && ws.writableLength === 0) written = performance.now() - t0;
      }, 1);
      void answer.then((text) => {
        clearInterval(poll);
        const answered = performance.now() - t0;
        if (written < 0) written = answered;
        let error = text;
        try {
          const m = JSON.parse(text) as { type?: unknown; error?: unknown };
          error = `${String(m.type)}: ${String(m.error)}`;
        } catch {
          // not JSON: keep the text
        }
        send({
          t: 'answered',
          written_ms: written,
          answered_ms: answered,
          answer: error.slice(0, 300),
          closed,
        });
      });
    }
  });
  send({ t: 'ready' });
}

/**
 * The orchestrator's handle on the attacker: forks `script --attacker PORT` (the scenario's own file, which then runs
 * `attacker`), and passes messages to and from it.
 */
export class Attacker {
  private readonly child: ChildProcess;
  private waiter: ((m: FromAttacker) => void) | null = null;
  private readonly early: FromAttacker[] = [];

  constructor(script: string, port: number) {
    this.child = track(
      fork(script, ['--attacker', String(port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
    this.child.on('message', (m: FromAttacker) => {
      if (this.waiter) this.waiter(m);
      else this.early.push(m);
    });
  }

  next(timeoutMs: number): Promise<FromAttacker> {
    const m = this.early.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`attacker: no message within ${timeoutMs} ms`));
      }, timeoutMs);
      const onExit = (code: number | null): void => {
        clearTimeout(t);
        this.waiter = null;
        reject(new Error(`attacker exited (code ${code})`));
      };
      this.child.once('exit', onExit);
      this.waiter = (msg) => {
        clearTimeout(t);
        this.child.off('exit', onExit);
        this.waiter = null;
        if (msg.t === 'fatal') reject(new Error(msg.message));
        else resolve(msg);
      };
    });
  }

  tell(m: ToAttacker): void {
    this.child.send(m);
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 1000);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The healthy client (in the orchestrator's process)

/** Heartbeat round trips, back to back, on one registered device connection. */
export class HealthyProbe {
  /** performance.now() of each send and receive, and the latency (ms), of completed round trips. */
  readonly sent: number[] = [];
  readonly recv: number[] = [];
  readonly lat: number[] = [];
  /** The close code when the server closed the healthy connection during the run. */
  closedWith: number | null = null;
  private outstandingSince = 0;
  private running = false;
  private readonly frame = buildFrame(
    JSON.stringify({ type: 'heartbeat', status: 'ok', client_type: 'device', client_id: 'stall-healthy' }),
    false,
  );

  private constructor(private readonly ws: RawWs) {}

  static async connect(port: number): Promise<HealthyProbe> {
    const ws = await RawWs.connect({ host: '127.0.0.1', port, path: `/ws?token=${API_KEY}` });
    const p = new HealthyProbe(ws);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('healthy client: no registration reply')), 10_000);
      ws.onMessage = (data) => {
        clearTimeout(t);
        const text = typeof data === 'string' ? data : data.toString('utf8');
        if (text.includes('"heartbeat"')) resolve();
        else reject(new Error(`healthy client registration failed: ${text.slice(0, 200)}`));
      };
      ws.send(JSON.stringify(deviceRegister('stall-healthy')), false);
    });
    ws.onMessage = () => p.onReply();
    ws.onClose = (code) => {
      if (p.running) p.closedWith = code;
    };
    return p;
  }

  start(): void {
    this.running = true;
    this.send();
  }

  stop(): void {
    this.running = false;
    this.ws.close(1000);
  }

  /** Time the open round trip has been waiting (0 when none). */
  openFor(now: number): number {
    return this.outstandingSince > 0 ? now - this.outstandingSince : 0;
  }

  clear(): void {
    this.sent.length = 0;
    this.recv.length = 0;
    this.lat.length = 0;
  }

  private send(): void {
    this.outstandingSince = performance.now();
    this.ws.sendFrames([this.frame]);
  }

  private onReply(): void {
    const now = performance.now();
    if (this.outstandingSince > 0) {
      this.sent.push(this.outstandingSince);
      this.recv.push(now);
      this.lat.push(now - this.outstandingSince);
    }
    this.outstandingSince = 0;
    if (this.running) this.send();
  }
}
