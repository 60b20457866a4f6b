/**
 * Fuzzing harness for the decoders: N seeded frames (the decoder fuzz test's mix from test/protocol/fuzz-gen.ts:
 * mutated valid AIP frames, random bytes, deep nesting, huge strings, prototype keys; plus invalid UTF-8, nesting
 * far past the limit and msgpack extensions) through `codec.decode` + `validateClientMessage`. A text frame goes
 * through the JSON codec; a binary frame through msgpack and through JSON (UTF-8 JSON in a binary frame).
 *
 * Every decode must return `{ ok }` or a rejection carrying a catalogue AipError. A crash is anything else: an
 * exception escaping decode or validation (other than an AipError rejection), or a rejection without a catalogue
 * code; so is a polluted Object.prototype at the end. Unhandled promise rejections are counted too. The run
 * prints progress and one summary line, and exits 1 on any crash or unhandled rejection.
 *
 * Run: `npm run fuzz -- --frames 1000000 [--seed N] [--limits fuzz|default]` (tsx). Frame i of a run comes from
 * seed `seed + floor(i / 10000)`; a crash report names both, so `--seed` with the same limits replays it.
 */
import { parseArgs } from 'node:util';
import {
  AipError,
  DEFAULT_LIMITS,
  Errors,
  jsonCodec,
  msgpackCodec,
  validateClientMessage,
  type DecodeLimits,
  type Decoded,
  type WireCodec,
} from '../protocol/index.js';
import { FUZZ_LIMITS, makeGen, makeHostileGen, prng, type Frame } from '../test/protocol/fuzz-gen.js';

const FRAMES_PER_SEED = 10_000;
/** Share of frames from the harness's extra kinds (the rest is the fuzz test's mix). */
const HOSTILE_SHARE = 0.25;
const MAX_CRASH_REPORTS = 10;
const CODE_NAMES = new Map<number, string>(Object.entries(Errors).map(([name, s]) => [s.code, name]));

interface Tally {
  frames: number;
  decodes: number;
  accepts: number;
  rejects: number;
  crashes: number;
  unhandledRejections: number;
  byCode: Map<string, number>;
}

interface Options {
  frames: number;
  seed: number;
  limits: DecodeLimits;
  limitsName: string;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      frames: { type: 'string', default: '100000' },
      seed: { type: 'string', default: '2705' },
      limits: { type: 'string', default: 'fuzz' },
    },
  });
  const frames = Number(values.frames);
  const seed = Number(values.seed);
  if (!Number.isSafeInteger(frames) || frames < 1)
    throw new Error(`--frames must be a positive integer, got ${values.frames}`);
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed must be an integer, got ${values.seed}`);
  if (values.limits !== 'fuzz' && values.limits !== 'default')
    throw new Error(`--limits must be fuzz or default, got ${values.limits}`);
  return {
    frames,
    seed,
    limits: values.limits === 'fuzz' ? FUZZ_LIMITS : DEFAULT_LIMITS,
    limitsName: values.limits,
  };
}

/** One decode + validation; returns the catalogue name of the rejection, or null for an accepted frame. Throws on a crash. */
function decodeOnce(codec: WireCodec, frame: Frame, isBinary: boolean, limits: DecodeLimits): string | null {
  let r: Decoded<unknown>;
  try {
    const raw = codec.decode(frame, isBinary, limits);
    r = raw.ok ? validateClientMessage(raw.value) : raw;
  } catch (err) {
    if (err instanceof AipError && CODE_NAMES.has(err.code)) return `${CODE_NAMES.get(err.code)!} (thrown)`;
    throw err;
  }
  if (r.ok) return null;
  const name = r.error instanceof AipError ? CODE_NAMES.get(r.error.code) : undefined;
  if (name === undefined) throw new Error(`rejection without a catalogue error: ${String(r.error)}`);
  return name;
}

function describeFrame(frame: Frame): string {
  if (typeof frame === 'string')
    return `text ${JSON.stringify(frame.slice(0, 120))}${frame.length > 120 ? '…' : ''} (${frame.length} chars)`;
  return `bytes ${Buffer.from(frame.subarray(0, 80)).toString('hex')}${frame.length > 80 ? '…' : ''} (${frame.length} B)`;
}

function reportCrash(
  tally: Tally,
  where: string,
  frame: Frame,
  codec: WireCodec,
  isBinary: boolean,
  limits: DecodeLimits,
  err: unknown,
): void {
  tally.crashes++;
  if (tally.crashes > MAX_CRASH_REPORTS) return;
  // Replay with stack traces on: the run itself turns them off, as nearly every frame is a (stackless) rejection.
  const saved = Error.stackTraceLimit;
  Error.stackTraceLimit = 20;
  let detail = err instanceof Error ? err.message : String(err);
  try {
    decodeOnce(codec, frame, isBinary, limits);
  } catch (again) {
    detail = again instanceof Error ? (again.stack ?? again.message) : String(again);
  } finally {
    Error.stackTraceLimit = saved;
  }
  console.log(
    `CRASH at ${where}, ${codec.name} codec${isBinary ? ' (binary)' : ''}: ${describeFrame(frame)}\n  ${detail}`,
  );
}

/** Feeds one seed's frames (up to FRAMES_PER_SEED) through the decoders. */
function runSeed(seed: number, count: number, limits: DecodeLimits, tally: Tally): void {
  const rand = prng(seed);
  const common = makeGen(rand);
  const hostile = makeHostileGen(rand);
  for (let i = 0; i < count; i++) {
    const frame = rand() < HOSTILE_SHARE ? hostile() : common();
    tally.frames++;
    const paths: [WireCodec, boolean][] =
      typeof frame === 'string'
        ? [[jsonCodec, false]]
        : [
            [msgpackCodec, true],
            [jsonCodec, true],
          ];
    for (const [codec, isBinary] of paths) {
      tally.decodes++;
      try {
        const rejected = decodeOnce(codec, frame, isBinary, limits);
        if (rejected === null) tally.accepts++;
        else {
          tally.rejects++;
          tally.byCode.set(rejected, (tally.byCode.get(rejected) ?? 0) + 1);
        }
      } catch (err) {
        reportCrash(tally, `seed ${seed} frame ${i}`, frame, codec, isBinary, limits, err);
      }
    }
  }
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function main(): Promise<void> {
  const opts = options();
  const tally: Tally = {
    frames: 0,
    decodes: 0,
    accepts: 0,
    rejects: 0,
    crashes: 0,
    unhandledRejections: 0,
    byCode: new Map(),
  };
  process.on('unhandledRejection', (reason) => {
    tally.unhandledRejections++;
    console.log(
      `UNHANDLED REJECTION: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`,
    );
  });
  const { maxFrameBytes, maxDepth } = opts.limits;
  console.log(
    `fuzz: ${opts.frames} frames, seed ${opts.seed}, limits ${opts.limitsName} (maxFrameBytes ${maxFrameBytes}, maxDepth ${maxDepth}), node ${process.version}`,
  );
  const started = performance.now();
  let lastProgress = started;
  const saved = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    for (let seed = opts.seed; tally.frames < opts.frames; seed++) {
      runSeed(seed, Math.min(FRAMES_PER_SEED, opts.frames - tally.frames), opts.limits, tally);
      await nextTurn(); // lets any stray promise rejection surface, and keeps progress output flowing
      const now = performance.now();
      if (now - lastProgress >= 5000 || tally.frames === opts.frames) {
        lastProgress = now;
        const pct = ((100 * tally.frames) / opts.frames).toFixed(0);
        console.log(
          `progress: ${tally.frames}/${opts.frames} frames (${pct}%), ${((now - started) / 1000).toFixed(1)} s, crashes ${tally.crashes}`,
        );
      }
    }
  } finally {
    Error.stackTraceLimit = saved;
  }
  await nextTurn();
  if (
    Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted') ||
    ({} as Record<string, unknown>).polluted !== undefined
  ) {
    tally.crashes++;
    console.log('CRASH: Object.prototype was polluted');
  }
  const elapsed = (performance.now() - started) / 1000;
  const codes = [...tally.byCode].sort((a, b) => b[1] - a[1]).map(([name, n]) => `${name} ${n}`);
  console.log(`rejections by code: ${codes.join(', ')}`);
  console.log(
    `fuzz summary: frames=${tally.frames} decodes=${tally.decodes} rejects=${tally.rejects} accepts=${tally.accepts} ` +
      `crashes=${tally.crashes} unhandled_rejections=${tally.unhandledRejections} elapsed=${elapsed.toFixed(1)}s`,
  );
  if (tally.crashes > 0 || tally.unhandledRejections > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 2;
});
