/**
 * The V8 flags aipd runs with. `npm start` (package.json) and the `aipd` bin (the shebang of main.ts) pass them,
 * and `npm run bench` starts aipd with them; test/cli/v8-flags.test.ts keeps the three in step.
 *
 * `--max-semi-space-size=4` caps each of the young generation's semispaces at 4 MiB (V8's default on 64-bit lets
 * them grow to 16 MiB). A burst of registrations grows the young generation to its cap and V8 keeps it: with the
 * default that alone was about 2 KB of RSS per device at 10,000 idle devices (4.3 KB in all against 2.1 KB with
 * the cap, `npm run bench -- --only idle-devices`); the round-trip throughput per server-CPU-second was the same
 * within the noise. To run with other values, start node yourself: `node --max-semi-space-size=16
 * dist/src/cli/main.js serve` (command-line flags win over NODE_OPTIONS).
 */
export const AIPD_V8_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
