/**
 * What the depth pre-scans (protocol/codec/prescan.ts) cost on the decode hot path: ns/op of each codec's decode
 * with the pre-scan (the codec as shipped) and without it (the same steps minus the scan: parse or unpack, the
 * shape check and checkTree), of the pre-scan alone, and of plain JSON.parse / msgpackr unpack, in one run.
 *
 * Two frames: the `command_results` of bench/codec.ts (546 B of JSON: few brackets, so the JSON scan is settled by
 * counting them), and a `command_results` whose result lists 300 UI controls (~40 KB of JSON: more brackets than
 * maxDepth, so the scan walks the whole text). JSON is measured as a string (a text frame in a JS string) and as
 * bytes (what uWS hands over: decode to text, then parse). Run: `npx tsx bench/micro/prescan.ts`, or
 * `npm run build && node dist/bench/micro/prescan.js`.
 */
import { Unpackr } from 'msgpackr';
import {
  DEFAULT_LIMITS,
  checkTree,
  encodeClientMessage,
  jsonCodec,
  msgpackCodec,
  type ClientMessageInput,
} from '../../protocol/index.js';
import { jsonBytesTooDeep, jsonTooDeep, prescanMsgpack } from '../../protocol/codec/prescan.js';
import { COMMAND_RESULTS } from '../codec.js';
import { measureInterleaved, printTable, type MicroResult } from './harness.js';

const MAX_DEPTH = DEFAULT_LIMITS.maxDepth;
/** The codec's own unpack options (protocol/codec/msgpack.ts). */
const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: 'number',
  copyBuffers: true,
});
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const CONTROLS: ClientMessageInput = {
  ...COMMAND_RESULTS,
  action_results: [
    {
      status: 'success',
      error: null,
      namespace: 'HostUIExecutor',
      call_id: 'c-1',
      result: Array.from({ length: 300 }, (_, i) => ({
        id: String(i),
        name: `Control ${i}`,
        type: i % 3 ? 'Button' : 'Edit',
        rect: [i, i + 10, i + 100, i + 30],
        enabled: true,
      })),
    },
  ],
};

/** decodeJson minus the pre-scan: parse, the object check, checkTree. */
function jsonWithoutScan(text: string): unknown {
  const v = JSON.parse(text) as unknown;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
  if (checkTree(v, MAX_DEPTH)) throw new Error('refused');
  return v;
}

/** decodeMsgpack minus the token walk: unpack, the object check, checkTree. */
function msgpackWithoutScan(bytes: Uint8Array): unknown {
  const v = unpackr.unpack(bytes) as unknown;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
  if (checkTree(v, MAX_DEPTH)) throw new Error('refused');
  return v;
}

function mustOk(r: { ok: boolean }): unknown {
  if (!r.ok) throw new Error('benchmark frame failed to decode');
  return r;
}

function forFrame(label: string, msg: ClientMessageInput): MicroResult[] {
  const text = encodeClientMessage(jsonCodec, msg) as string;
  const bytes = new TextEncoder().encode(text);
  const packed = encodeClientMessage(msgpackCodec, msg) as Uint8Array;
  if (jsonTooDeep(text, MAX_DEPTH) || prescanMsgpack(packed, MAX_DEPTH))
    throw new Error('benchmark frame refused');
  const j = `${label}, json ${bytes.length} B`;
  const m = `${label}, msgpack ${packed.length} B`;
  return measureInterleaved([
    [`${j}: JSON.parse(string)`, () => JSON.parse(text)],
    [`${j}: pre-scan alone (string)`, () => jsonTooDeep(text, MAX_DEPTH)],
    [`${j}: decode(string) without pre-scan`, () => jsonWithoutScan(text)],
    [`${j}: decode(string) with pre-scan`, () => mustOk(jsonCodec.decode(text, false))],
    [`${j}: TextDecoder + JSON.parse(bytes)`, () => JSON.parse(utf8.decode(bytes))],
    [`${j}: pre-scan alone (bytes, text at hand)`, () => jsonBytesTooDeep(bytes, MAX_DEPTH, text)],
    [`${j}: decode(bytes) without pre-scan`, () => jsonWithoutScan(utf8.decode(bytes))],
    [`${j}: decode(bytes) with pre-scan`, () => mustOk(jsonCodec.decode(bytes, false))],
    [`${m}: msgpackr unpack`, () => unpackr.unpack(packed)],
    [`${m}: token walk alone`, () => prescanMsgpack(packed, MAX_DEPTH)],
    [`${m}: decode without walk`, () => msgpackWithoutScan(packed)],
    [`${m}: decode with walk`, () => mustOk(msgpackCodec.decode(packed, true))],
  ]);
}

const rows = [...forFrame('command_results', COMMAND_RESULTS), ...forFrame('300 controls', CONTROLS)];
printTable(`decode pre-scan cost, medians of interleaved rounds (node ${process.version})`, rows);
