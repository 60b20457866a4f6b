/**
 * ChurnLoad (the soak's reconnect churn): short-lived devices, lean RawWs ones or AipDeviceClients, that connect
 * and go away in one of the CHURN_KINDS ways, some in the middle of a task a churn controller started on them.
 */
import { AipControllerClient, AipDeviceClient } from '../../src/client/index.js';
import { RawWs } from '../../src/cli/loadtest-ws.js';
import { deviceRegister } from './register.js';
import { okResults, plan, sleep, watch, type Endpoint, type Json } from './soak-clients.js';
import { bucket, Counter, errText, type SoakCounters } from './soak-counters.js';
import type { TaskTracker } from './soak-task-tracker.js';

/** A lean device on RawWs: registers, answers commands after `delayMs`; `destroy()` drops it without a close. */
async function rawDevice(ep: Endpoint, id: string, delayMs: number): Promise<RawWs> {
  const ws = await RawWs.connect({
    host: ep.host,
    port: ep.port,
    path: `/ws?token=${encodeURIComponent(ep.token)}`,
  });
  return new Promise<RawWs>((resolve, reject) => {
    let registered = false;
    const timer = setTimeout(() => {
      ws.destroy();
      reject(new Error('no registration reply within 10 s'));
    }, 10_000);
    ws.onMessage = (data) => {
      let m: Json;
      try {
        m = JSON.parse(typeof data === 'string' ? data : data.toString('utf8')) as Json;
      } catch {
        return;
      }
      if (!registered) {
        clearTimeout(timer);
        if (m.type === 'heartbeat' && m.status === 'ok') {
          registered = true;
          resolve(ws);
        } else {
          ws.destroy();
          reject(new Error(`registration refused: ${String(m.error)}`));
        }
        return;
      }
      if (m.type !== 'command') return;
      const actions = Array.isArray(m.actions) ? (m.actions as Json[]) : [];
      setTimeout(() => {
        ws.send(
          JSON.stringify({
            type: 'command_results',
            status: 'continue',
            client_id: id,
            session_id: m.session_id,
            prev_response_id: m.response_id,
            action_results: actions.map((a) => ({
              status: 'success',
              result: 'ok',
              call_id: a?.call_id ?? null,
            })),
          }),
          false,
        );
      }, delayMs);
    };
    ws.onClose = (code) => {
      if (registered) return;
      clearTimeout(timer);
      reject(new Error(`closed during registration (code ${code})`));
    };
    ws.send(JSON.stringify(deviceRegister(id)), false);
  });
}

export const CHURN_KINDS = [
  'register-then-drop',
  'task-then-kill-device',
  'client-task-then-close',
  'drop-while-registering',
  'drop-after-handshake',
] as const;
type ChurnKind = (typeof CHURN_KINDS)[number];

export class ChurnLoad {
  readonly cycles = new Counter();
  readonly failures = new Counter();
  skipped = 0;
  private controller: AipControllerClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private inflight = new Set<Promise<void>>();
  private n = 0;

  constructor(
    private readonly ep: Endpoint,
    private readonly perS: number,
    private readonly heartbeatMs: number,
    private readonly tracker: TaskTracker,
    private readonly k: SoakCounters,
  ) {}

  async connect(): Promise<void> {
    this.controller = new AipControllerClient({
      url: this.ep.url,
      token: this.ep.token,
      clientId: 'soak-churn-ctl',
      reconnect: false,
      heartbeatIntervalMs: this.heartbeatMs,
    });
    watch(this.controller, 'churn controller', this.k, this.tracker);
    await this.controller.connect();
  }

  start(): void {
    if (this.perS <= 0) return;
    this.timer = setInterval(() => this.tick(), 1000 / this.perS);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all([...this.inflight]);
  }

  async close(): Promise<void> {
    await this.controller?.close();
  }

  private tick(): void {
    if (this.inflight.size >= 8) {
      this.skipped++;
      return;
    }
    const n = this.n++;
    const kind = CHURN_KINDS[n % CHURN_KINDS.length]!;
    const p = this.cycle(kind, n).then(
      () => this.cycles.add(kind),
      (err: unknown) => this.failures.add(`${kind}: ${bucket(errText(err))}`),
    );
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  private async cycle(kind: ChurnKind, n: number): Promise<void> {
    const id = `soak-churn-${n}`;
    const ctl = this.controller!;
    switch (kind) {
      case 'register-then-drop': {
        const ws = await rawDevice(this.ep, id, 0);
        ws.destroy();
        return;
      }
      case 'task-then-kill-device': {
        const ws = await rawDevice(this.ep, id, 20);
        const sid = `soak-churn-task-${n}`;
        const ended = this.tracker.request(sid, 'churn');
        try {
          await ctl.requestTask({ request: plan(20), sessionId: sid, targetId: id });
        } catch (err) {
          this.tracker.refusedWith(sid, errText(err));
          ws.destroy();
          throw err;
        }
        await sleep(30 + Math.random() * 220);
        this.tracker.killed(sid);
        ws.destroy();
        await Promise.race([ended, sleep(15_000)]);
        return;
      }
      case 'client-task-then-close': {
        const dev = new AipDeviceClient({
          url: this.ep.url,
          token: this.ep.token,
          clientId: id,
          reconnect: false,
          onCommand: okResults,
        });
        dev.on('error', () => undefined);
        try {
          await dev.connect();
          const sid = `soak-churn-task-${n}`;
          const ended = this.tracker.request(sid, 'churn');
          try {
            await ctl.requestTask({ request: plan(3), sessionId: sid, targetId: id });
          } catch (err) {
            this.tracker.refusedWith(sid, errText(err));
            throw err;
          }
          await Promise.race([ended, sleep(15_000)]);
        } finally {
          await dev.close();
        }
        return;
      }
      case 'drop-while-registering': {
        const ws = await RawWs.connect({
          host: this.ep.host,
          port: this.ep.port,
          path: `/ws?token=${encodeURIComponent(this.ep.token)}`,
        });
        ws.send(JSON.stringify(deviceRegister(id, {})), false);
        ws.destroy();
        return;
      }
      case 'drop-after-handshake': {
        const ws = await RawWs.connect({
          host: this.ep.host,
          port: this.ep.port,
          path: `/ws?token=${encodeURIComponent(this.ep.token)}`,
        });
        ws.destroy();
        return;
      }
    }
  }
}
