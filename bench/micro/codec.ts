/**
 * The codec micro benchmark (same cases as bench/codec.ts: pre-built `command` and `command_results`
 * frames, both codecs, plain JSON / msgpackr baselines). Run: `npm run build && node dist/bench/micro/codec.js`.
 */
import { main } from '../codec.js';

main();
