/**
 * The command line of `npm run soak` and the settings it makes, with their defaults. Read when this module loads:
 * --help prints USAGE and exits 0; a bad value prints it and exits 2.
 */
import { parseArgs } from 'node:util';

export const { values } = parseArgs({
  options: {
    minutes: { type: 'string' },
    'calibrate-s': { type: 'string' },
    rate: { type: 'string' },
    'load-fraction': { type: 'string' },
    devices: { type: 'string' },
    loops: { type: 'string' },
    'heartbeat-ms': { type: 'string' },
    'channel-pairs': { type: 'string' },
    'channel-kib': { type: 'string' },
    'channel-rate-kib': { type: 'string' },
    'hold-s': { type: 'string' },
    'churn-per-s': { type: 'string' },
    'bad-per-s': { type: 'string' },
    'sample-s': { type: 'string' },
    'gc-every': { type: 'string' },
    'drain-s': { type: 'string' },
    store: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean' },
  },
});

const USAGE = `usage: npm run soak -- --minutes N [options]
  --minutes N            soak duration after calibration (default 1; 0.5 works)
  --calibrate-s S        unpaced calibration run (default 10)
  --rate R               fixed command round trips/s for the plan tasks (skips the calibration)
  --load-fraction F      share of the estimated server peak to drive (default 0.5)
  --devices N            task devices, one controller each (default 4)
  --loops N              plan tasks each controller keeps running (default 4)
  --heartbeat-ms MS      client heartbeat interval (default 2000)
  --channel-pairs N      device/controller pairs with data channels (default 2)
  --channel-kib K        KiB per channel, echoed back (default 1024)
  --channel-rate-kib K   KiB/s each pair writes (default 512)
  --hold-s S             lifetime of a held task carrying channels (default 30)
  --churn-per-s R        short-lived connections per second (default 2)
  --bad-per-s R          bad frames per second (default 5)
  --sample-s S           server memory sample interval (default 5)
  --gc-every N           every Nth sample is taken after a full gc() (default 6, 2 for runs under 5 min; 0 = never)
  --drain-s S            after the load, how long tasks may take to end before they count as lost (default 30)
  --store S              the server's session store (its --store; default: the server's own default), with
                         --data-dir in a temporary folder that is removed at the end
  --out FILE             JSON output (default bench/results/soak-latest.json)`;

if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

function num(name: string, raw: string | undefined, def: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`soak: bad value ${JSON.stringify(raw)} for --${name} (expected ${min}..${max})\n${USAGE}`);
    process.exit(2);
  }
  return v;
}

export const settings = {
  minutes: num('minutes', values.minutes, 1, 0.1, 24 * 60),
  calibrateS: num('calibrate-s', values['calibrate-s'], 10, 2, 600),
  rate: values.rate === undefined ? null : num('rate', values.rate, 0, 1, 1e6),
  loadFraction: num('load-fraction', values['load-fraction'], 0.5, 0.05, 1),
  devices: num('devices', values.devices, 4, 1, 64),
  loops: num('loops', values.loops, 4, 1, 64),
  heartbeatMs: num('heartbeat-ms', values['heartbeat-ms'], 2000, 100, 60_000),
  channelPairs: num('channel-pairs', values['channel-pairs'], 2, 0, 16),
  channelKiB: num('channel-kib', values['channel-kib'], 1024, 16, 1024 * 1024),
  channelRateKiB: num('channel-rate-kib', values['channel-rate-kib'], 512, 16, 1024 * 1024),
  holdS: num('hold-s', values['hold-s'], 30, 1, 500),
  churnPerS: num('churn-per-s', values['churn-per-s'], 2, 0, 200),
  badPerS: num('bad-per-s', values['bad-per-s'], 5, 0, 500),
  sampleS: num('sample-s', values['sample-s'], 5, 1, 600),
  gcEvery: 0,
  drainS: num('drain-s', values['drain-s'], 30, 1, 600),
};
// Short runs need post-GC samples more often to have a few after the warm-up.
settings.gcEvery = num('gc-every', values['gc-every'], settings.minutes < 5 ? 2 : 6, 0, 1000);
export const durationS = settings.minutes * 60;
