/**
 * Load-generator child process, forked by bench/run.ts with an IPC channel. One JSON argument selects the
 * mode (`echo`, `aip`, `idle`, `channel`, `echo-bin`). The parent drives the phases so that it can sample the server's /proc
 * counters at the same instants the load generator resets and snapshots its own counters:
 *
 *   child → parent: {t:'progress',done,total} · {t:'ready'} · {t:'snapshot',data} · {t:'fatal',message}
 *   parent → child: {t:'start'} · {t:'reset'} · {t:'snapshot'} · {t:'heartbeat'} · {t:'stop'}
 *
 * The child talks only to 127.0.0.1 and is bounded: it exits on `stop`, when the parent goes away, or at
 * its own hard deadline (`deadlineS`), whichever comes first.
 */
import { AipLoad, type AipSnapshot, type LoadCodec } from '../src/cli/loadtest-core.js';
import { BinaryEchoLoad, ChannelLoad } from './lib/channel-load.js';
import { EchoLoad } from './lib/echo-load.js';

export type LoadgenConfig =
  | {
      mode: 'echo';
      port: number;
      conns: number;
      window: number;
      payloadBytes: number;
      deadlineS: number;
      rate?: number;
    }
  | { mode: 'channel'; port: number; token: string; streams: number; idPrefix: string; deadlineS: number }
  | { mode: 'echo-bin'; port: number; conns: number; deadlineS: number }
  | {
      mode: 'aip' | 'idle';
      port: number;
      token: string;
      devices: number;
      steps: number;
      codec: LoadCodec;
      idPrefix: string;
      deadlineS: number;
      rate?: number;
    };

export type ParentMsg =
  { t: 'start' } | { t: 'reset' } | { t: 'snapshot' } | { t: 'heartbeat' } | { t: 'stop' };
export type ChildMsg =
  | { t: 'progress'; done: number; total: number }
  | { t: 'ready'; connected: number }
  | { t: 'snapshot'; data: AipSnapshot }
  | { t: 'fatal'; message: string };

interface Load {
  connectAll(p: (done: number, total: number) => void): Promise<void>;
  resetStats(): void;
  snapshot(): AipSnapshot;
  stop(): void;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as LoadgenConfig;
const send = (m: ChildMsg): void => {
  if (process.connected) process.send!(m);
};

function finish(code: number): void {
  setTimeout(() => process.exit(code), 200).unref();
}

async function main(): Promise<void> {
  const host = '127.0.0.1';
  setTimeout(() => {
    send({ t: 'fatal', message: `loadgen deadline of ${cfg.deadlineS} s reached` });
    process.exit(3);
  }, cfg.deadlineS * 1000).unref();
  let load: Load;
  let start: () => void;
  let heartbeat = (): void => {};
  if (cfg.mode === 'echo') {
    const e = new EchoLoad({
      host,
      port: cfg.port,
      conns: cfg.conns,
      window: cfg.window,
      payloadBytes: cfg.payloadBytes,
      ...(cfg.rate ? { rate: cfg.rate } : {}),
    });
    load = e;
    start = () => e.start();
  } else if (cfg.mode === 'channel') {
    const c = new ChannelLoad({
      host,
      port: cfg.port,
      token: cfg.token,
      streams: cfg.streams,
      idPrefix: cfg.idPrefix,
    });
    load = c;
    start = () => c.start();
  } else if (cfg.mode === 'echo-bin') {
    const e = new BinaryEchoLoad({ host, port: cfg.port, conns: cfg.conns });
    load = e;
    start = () => e.start();
  } else {
    const a = new AipLoad({
      host,
      port: cfg.port,
      path: '/ws',
      token: cfg.token,
      devices: cfg.devices,
      steps: cfg.steps,
      codec: cfg.codec,
      idPrefix: cfg.idPrefix,
      ...(cfg.rate ? { rate: cfg.rate } : {}),
    });
    load = a;
    start = cfg.mode === 'aip' ? () => a.startTasks() : () => {};
    heartbeat = () => a.heartbeatAll();
  }
  process.on('message', (m: ParentMsg) => {
    switch (m.t) {
      case 'start':
        return start();
      case 'reset':
        return load.resetStats();
      case 'snapshot':
        return send({ t: 'snapshot', data: load.snapshot() });
      case 'heartbeat':
        return heartbeat();
      case 'stop':
        load.stop();
        return finish(0);
    }
  });
  process.on('disconnect', () => {
    load.stop();
    finish(0);
  });
  let last = 0;
  await load.connectAll((done, total) => {
    const now = Date.now();
    if (done === total || now - last > 250) {
      last = now;
      send({ t: 'progress', done, total });
    }
  });
  send({ t: 'ready', connected: load.snapshot().devices_connected });
}

main().catch((err: unknown) => {
  send({ t: 'fatal', message: err instanceof Error ? err.message : String(err) });
  finish(1);
});
