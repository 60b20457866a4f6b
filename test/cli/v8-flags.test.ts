/**
 * The V8 flags aipd runs with (src/cli/v8-flags.ts) are the ones `npm start` and the `aipd` bin pass, and a
 * process started the bin's way really runs with them.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AIPD_V8_FLAGS } from '../../src/cli/v8-flags.js';

const root = new URL('../../', import.meta.url);

/** Many objects that survive a scavenge or two (as registrations do). */
const SURVIVING_BURST =
  'let keep = []; for (let i = 0; i < 3e6; i++) { keep.push({ a: i, b: [i] }); if (keep.length > 200000) keep = []; }';

describe('V8 flags', () => {
  it('npm start and the aipd bin pass exactly AIPD_V8_FLAGS', () => {
    const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
      scripts: Record<string, string>;
      bin: Record<string, string>;
    };
    expect(pkg.scripts.start).toBe(`node ${AIPD_V8_FLAGS.join(' ')} ${pkg.bin.aipd} serve`);
    const shebang = readFileSync(new URL('src/cli/main.ts', root), 'utf8').split('\n')[0];
    expect(shebang).toBe(`#!/usr/bin/env -S node ${AIPD_V8_FLAGS.join(' ')}`);
  });

  it('a node started with them keeps its young generation small under a burst that grows the default one', () => {
    // V8 grows the young generation to its cap under SURVIVING_BURST.
    const burst =
      SURVIVING_BURST +
      'process.stdout.write(String(require("node:v8").getHeapSpaceStatistics()' +
      '.find((s) => s.space_name === "new_space").space_size));';
    const youngBytes = (flags: readonly string[]): number =>
      Number(spawnSync(process.execPath, [...flags, '-e', burst], { encoding: 'utf8' }).stdout);
    const capped = youngBytes(AIPD_V8_FLAGS);
    const uncapped = youngBytes([]);
    expect(capped).toBeGreaterThan(0);
    expect(capped).toBeLessThanOrEqual(8 * 1024 * 1024); // two semispaces of 4 MiB
    expect(uncapped).toBeGreaterThan(capped);
  });

  it('a node started with them scavenges on its main thread only', () => {
    // SURVIVING_BURST: each scavenge has copying to share out.
    const burst = SURVIVING_BURST;
    /** Each scavenge's time spent on helper threads (ms), from V8's --trace-gc-nvp lines. */
    const helperMs = (flags: readonly string[]): number[] =>
      spawnSync(process.execPath, [...flags, '--trace-gc-nvp', '-e', burst], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter((l) => / gc=s /.test(l))
        .map((l) => Number(/background\.scavenge\.parallel=([\d.]+)/.exec(l)?.[1] ?? NaN));
    const alone = helperMs(AIPD_V8_FLAGS);
    expect(alone.length).toBeGreaterThanOrEqual(5);
    expect(alone.every((ms) => ms === 0)).toBe(true);
    // The control: the same flags less this one, where some scavenges do use the helpers.
    const parallel = helperMs(AIPD_V8_FLAGS.filter((f) => f !== '--no-parallel-scavenge'));
    expect(parallel.some((ms) => ms > 0)).toBe(true);
  });
});
