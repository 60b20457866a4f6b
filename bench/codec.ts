/**
 * Codec micro benchmark: ns/op of decode (+ guards + zod validation) and encode for a `command`
 * (ServerMessage, 1 action, 3 uuids, ISO timestamp) and a `command_results` (ClientMessage, 1 Result),
 * in the JSON and msgpack codecs, next to plain JSON.parse / JSON.stringify and msgpackr of the same
 * objects, measured in the same run.
 *
 * Method: every case is warmed up and its batch size calibrated to ~REP_MS; then REPS rounds time every
 * case once each (round-robin), and the median per case is reported. Prints a markdown table and writes bench/results/codec.json.
 * Run: `npm run bench:codec` (builds, then `node dist/bench/codec.js`).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Packr, Unpackr } from 'msgpackr';
import {
  clientWire,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
  jsonCodec,
  msgpackCodec,
  serverWire,
  type ClientMessageInput,
  type ServerMessageInput,
} from '../protocol/index.js';

const REP_MS = 120;
const REPS = 7;

export const COMMAND: ServerMessageInput = {
  type: 'command',
  status: 'continue',
  agent_name: 'HostAgent',
  actions: [
    {
      tool_name: 'click_input',
      parameters: { id: '12', name: 'Save', button: 'left', double: false },
      tool_type: 'action',
      call_id: randomUUID(),
    },
  ],
  session_id: randomUUID(),
  task_name: 'notepad_hello',
  timestamp: new Date().toISOString(),
  response_id: randomUUID(),
};

export const COMMAND_RESULTS: ClientMessageInput = {
  type: 'command_results',
  status: 'continue',
  client_type: 'device',
  session_id: randomUUID(),
  client_id: 'device_win_01',
  action_results: [
    {
      status: 'success',
      error: null,
      result: 'Clicked Save at (640, 412).',
      namespace: 'HostUIExecutor',
      call_id: randomUUID(),
    },
  ],
  timestamp: new Date().toISOString(),
  request_id: randomUUID(),
  prev_response_id: randomUUID(),
};

export interface CodecRow {
  message: 'command' | 'command_results';
  codec: 'json' | 'msgpack' | 'baseline';
  operation: string;
  bytes: number;
  ns_per_op: number;
}

let sink: unknown;

/** Batch size that makes `fn` take about REP_MS (the growing batches also warm up the JIT). */
function calibrate(fn: () => unknown): number {
  let n = 64;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink = fn();
    const ms = performance.now() - t0;
    if (ms >= 15) return Math.max(1, Math.round((n * REP_MS) / ms));
    n *= 4;
  }
}

function batchNs(fn: () => unknown, n: number): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) sink = fn();
  return ((performance.now() - t0) * 1e6) / n;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const mustOk = (r: { ok: boolean }): unknown => {
  if (!r.ok) throw new Error('benchmark frame failed to decode');
  return r;
};

export function runCodecBench(): CodecRow[] {
  const cases: { row: Omit<CodecRow, 'ns_per_op'>; fn: () => unknown }[] = [];
  const add = (
    message: CodecRow['message'],
    codec: CodecRow['codec'],
    operation: string,
    bytes: number,
    fn: () => unknown,
  ) => {
    fn(); // fail fast before timing
    cases.push({ row: { message, codec, operation, bytes }, fn });
  };
  const rawPackr = new Packr({ useRecords: false });
  const rawUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

  // command (S→C): encode is the server's hot path; decode is what a client does.
  {
    const wire = serverWire(COMMAND);
    const jsonText = encodeServerMessage(jsonCodec, COMMAND) as string;
    const jsonBytes = Buffer.from(jsonText);
    const mp = encodeServerMessage(msgpackCodec, COMMAND) as Uint8Array;
    add('command', 'json', 'decode+validate (bytes)', jsonBytes.length, () =>
      mustOk(decodeServerMessage(jsonCodec, jsonBytes, false)),
    );
    add('command', 'msgpack', 'decode+validate (bytes)', mp.length, () =>
      mustOk(decodeServerMessage(msgpackCodec, mp, true)),
    );
    add('command', 'baseline', 'JSON.parse(buf.toString())', jsonBytes.length, () =>
      JSON.parse(jsonBytes.toString('utf8')),
    );
    add('command', 'baseline', 'msgpackr unpack', mp.length, () => rawUnpackr.unpack(mp));
    add('command', 'json', 'encode (string)', jsonText.length, () => encodeServerMessage(jsonCodec, COMMAND));
    add('command', 'msgpack', 'encode (bytes)', mp.length, () => encodeServerMessage(msgpackCodec, COMMAND));
    add('command', 'baseline', 'JSON.stringify (string)', jsonText.length, () => JSON.stringify(wire));
    add('command', 'baseline', 'Buffer.from(JSON.stringify)', jsonText.length, () =>
      Buffer.from(JSON.stringify(wire)),
    );
    add('command', 'baseline', 'msgpackr pack', mp.length, () => rawPackr.pack(wire));
  }

  // command_results (C→S): decode is the server's hot path.
  {
    const wire = clientWire(COMMAND_RESULTS);
    const jsonText = encodeClientMessage(jsonCodec, COMMAND_RESULTS) as string;
    const jsonBytes = Buffer.from(jsonText);
    const mp = encodeClientMessage(msgpackCodec, COMMAND_RESULTS) as Uint8Array;
    add('command_results', 'json', 'decode+validate (bytes)', jsonBytes.length, () =>
      mustOk(decodeClientMessage(jsonCodec, jsonBytes, false)),
    );
    add('command_results', 'json', 'decode+validate (string)', jsonText.length, () =>
      mustOk(decodeClientMessage(jsonCodec, jsonText, false)),
    );
    add('command_results', 'msgpack', 'decode+validate (bytes)', mp.length, () =>
      mustOk(decodeClientMessage(msgpackCodec, mp, true)),
    );
    add('command_results', 'baseline', 'JSON.parse(buf.toString())', jsonBytes.length, () =>
      JSON.parse(jsonBytes.toString('utf8')),
    );
    add('command_results', 'baseline', 'msgpackr unpack', mp.length, () => rawUnpackr.unpack(mp));
    add('command_results', 'json', 'encode (string)', jsonText.length, () =>
      encodeClientMessage(jsonCodec, COMMAND_RESULTS),
    );
    add('command_results', 'msgpack', 'encode (bytes)', mp.length, () =>
      encodeClientMessage(msgpackCodec, COMMAND_RESULTS),
    );
    add('command_results', 'baseline', 'JSON.stringify (string)', jsonText.length, () =>
      JSON.stringify(wire),
    );
    add('command_results', 'baseline', 'Buffer.from(JSON.stringify)', jsonText.length, () =>
      Buffer.from(JSON.stringify(wire)),
    );
  }

  // Repetitions go round-robin over all cases, so background load on a shared box hits every case alike.
  const sizes = cases.map((c) => calibrate(c.fn));
  const samples: number[][] = cases.map(() => []);
  for (let r = 0; r < REPS; r++) cases.forEach((c, i) => samples[i]!.push(batchNs(c.fn, sizes[i]!)));
  return cases.map((c, i) => ({ ...c.row, ns_per_op: Math.round(median(samples[i]!)) }));
}

export function codecTable(rows: readonly CodecRow[]): string {
  const lines = ['| message | codec | operation | bytes | ns/op |', '|---|---|---|---:|---:|'];
  for (const r of rows)
    lines.push(
      `| ${r.message} | ${r.codec} | ${r.operation} | ${r.bytes} | ${r.ns_per_op.toLocaleString('en-US')} |`,
    );
  return lines.join('\n');
}

export function main(): void {
  const started = performance.now();
  const rows = runCodecBench();
  const seconds = (performance.now() - started) / 1000;
  console.log(`\n### Codec micro benchmark (median of ${REPS} × ~${REP_MS} ms, node ${process.version})\n`);
  console.log(codecTable(rows));
  console.log(`\n(${seconds.toFixed(1)} s; sink ${typeof sink})`);
  const dir = join(process.cwd(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'codec.json');
  writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, reps: REPS, rep_ms: REP_MS, seconds, rows }, null, 2)}\n`,
  );
  console.log(`wrote ${file}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
