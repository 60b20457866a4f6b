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
 *
 * `--no-allocation-site-pretenuring`: V8 otherwise learns, per allocation site, that objects made there survive
 * scavenges, and from then on makes them in the old generation. A task's step results live for the whole task (the
 * plan agent's record, the replay log), so the sites that make every round trip's objects were soon pretenured,
 * and each round trip's garbage, about 2 KB, went straight to the old generation: under `aip-json-lat` the heap grew
 * from about 50 to 170 MB between mark-compacts (`--trace-gc`). Without it the heap stays under 70 MB, and in
 * interleaved runs `aip-json-lat` p99 was lower in 6 of 6 pairs (3.6–4.5 ms against 4.1–6.0) with the CPU per round
 * trip the same or better; idle memory rose by 2–5 % (2.1–2.2 KB per device).
 *
 * `--no-parallel-scavenge`: each scavenge runs on the main thread alone. With 4 MiB semispaces a scavenge under
 * load copies about 200–250 KB (`--trace-gc-nvp`), too little to split: done in parallel, the main thread also waits
 * for helper threads that share the cores with everything else (on the two-core bench box, with the load
 * generator), and they burn CPU of their own. Under `aip-json-lat` at 5,000/s the scavenges of that size took
 * 1.1 ms at the median and 1.5–1.6 ms at p90 alone, against 1.5 and 2.1–2.3 ms in parallel (2 runs each). In 4
 * interleaved pairs of `aip-json` + `aip-json-lat`, alone was lower in 4 of 4 for the mean scavenge at peak
 * (1.13–1.62 ms against 1.50–2.16) and for the GC share (6.8–7.9 % against 8.9–12.2 %), and lower in 3 of 4 for
 * the server CPU per round trip and for `aip-json-lat` p99. The argument does not depend on the core count: it is
 * the size of the work, and the CPU is counted per server-CPU-second wherever the helpers run.
 */
export const AIPD_V8_FLAGS: readonly string[] = [
  '--max-semi-space-size=4',
  '--no-allocation-site-pretenuring',
  '--no-parallel-scavenge',
];
