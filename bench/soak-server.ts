/**
 * The server side of `npm run soak`: aipd (startServer from src/app/server.ts) on 127.0.0.1, port 0, in its own
 * process so that its memory is measured alone. It prints JSON lines on stdout:
 *
 *   {"t":"listening","port":N,"pid":N,"gc":true}
 *   {"t":"sample","n":1,"at":<epoch ms>,"gc":false,"rss":..,"heapUsed":..,"heapTotal":..,"external":..,
 *    "arrayBuffers":..,"port":N,"clients":..,"channels":..}
 *
 * one sample at start and then every --sample-ms. With `node --expose-gc`, every --gc-every'th sample is taken right
 * after a full `gc()` and is marked `"gc":true` (a post-GC heap figure); the others are taken as they are.
 *
 * Bounded: exits on SIGTERM/SIGINT (graceful close), when its stdin closes (the soak process went away), and at
 * --deadline-s.
 */
import { parseArgs } from 'node:util';
import { startServer } from '../src/app/server.js';
import { finalizeConfig } from '../src/config.js';

const { values } = parseArgs({
  options: {
    'api-key': { type: 'string', default: 'soak-key' },
    'sample-ms': { type: 'string', default: '5000' },
    'gc-every': { type: 'string', default: '6' },
    'deadline-s': { type: 'string', default: '7200' },
    /** Extra server configuration keys (ServerConfigInput) as a JSON object, e.g. {"store":"memory"}. */
    'config-json': { type: 'string', default: '{}' },
  },
});

const sampleMs = Math.max(100, Number(values['sample-ms']));
const gcEvery = Math.max(0, Math.floor(Number(values['gc-every'])));
const deadlineS = Math.max(10, Number(values['deadline-s']));
const gc = (globalThis as { gc?: () => void }).gc;

function emit(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const extra = JSON.parse(values['config-json']) as Record<string, unknown>;
const config = finalizeConfig({
  ...extra,
  port: 0,
  host: '127.0.0.1',
  apiKey: values['api-key'],
  logLevel: 'silent',
});
const server = await startServer(config);
emit({
  t: 'listening',
  port: server.port,
  pid: process.pid,
  gc: typeof gc === 'function',
  config: Object.fromEntries(
    Object.keys(extra).map((key) => [key, (config as Record<string, unknown>)[key] ?? null]),
  ),
});

let n = 0;
function sample(): void {
  n++;
  const didGc = typeof gc === 'function' && gcEvery > 0 && n % gcEvery === 0;
  if (didGc) gc();
  const m = process.memoryUsage();
  emit({
    t: 'sample',
    n,
    at: Date.now(),
    gc: didGc,
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    port: server.port,
    clients: server.registry.stats().total,
    channels: server.channels.stats().channels,
  });
}
sample();
const timer = setInterval(sample, sampleMs);

let stopping = false;
function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  const hard = setTimeout(() => process.exit(code), 5000);
  server.close().then(
    () => {
      clearTimeout(hard);
      process.exit(code);
    },
    () => process.exit(code === 0 ? 1 : code),
  );
}
process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));
process.stdin.on('close', () => stop(0));
process.stdin.resume();
setTimeout(() => {
  process.stderr.write(`soak-server: deadline of ${deadlineS} s reached, exiting\n`);
  stop(2);
}, deadlineS * 1000);
