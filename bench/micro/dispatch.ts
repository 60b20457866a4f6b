/**
 * Micro benchmarks of the command hot path, in process (no sockets):
 *
 *   decode    decodeClientMessage (parse + guards + zod validation) of a pre-built `command_results` frame
 *   encode    encodeServerMessage of a one-action `command`
 *   dispatch  CommandDispatcher.execute → Connection.send (encodes the command) → decode of a pre-built
 *             `command_results` frame → CommandDispatcher.deliver → the execute promise resolves
 *
 * for the JSON (UFO) and msgpack codecs. Run: `npm run build && node dist/bench/micro/dispatch.js`.
 */
import {
  decodeClientMessage,
  encodeClientMessage,
  encodeServerMessage,
  jsonCodec,
  msgpackCodec,
  type WireCodec,
} from '../../protocol/index.js';
import { silentLogger } from '../../src/logger.js';
import { CommandDispatcher } from '../../src/server/command-dispatcher.js';
import type { CommandBatch } from '../../src/session/types.js';
import type { ClientLink } from '../../src/state/client-directory.js';
import { commandMsg, resultsMsg } from './frames.js';
import { measure, printTable, type MicroResult } from './harness.js';

const batch: CommandBatch = {
  agent_name: 'LinuxAgent',
  actions: [{ tool_name: 'noop', tool_type: 'action', parameters: { i: 0 } }],
};

/** An in-memory client link that encodes what it is asked to send, like the server's peer does. */
function fakeConnection(codec: WireCodec, sent: { responseId: string | null }): ClientLink {
  return {
    id: 'micro',
    closed: false,
    send(msg) {
      encodeServerMessage(codec, msg);
      sent.responseId = (msg as { response_id?: string | null }).response_id ?? null;
      return true;
    },
    sendRaw: () => true,
    bufferedBytes: () => 0,
    close: () => {},
  };
}

async function forCodec(codec: WireCodec): Promise<MicroResult[]> {
  const frame = encodeClientMessage(codec, resultsMsg);
  const isBinary = codec.binary;
  const check = decodeClientMessage(codec, frame, isBinary);
  if (!check.ok) throw new Error(`pre-built ${codec.name} frame does not decode: ${check.error.message}`);

  const sent = { responseId: null as string | null };
  const dispatcher = new CommandDispatcher({
    sessionId: 'micro-session',
    taskName: 'bench',
    executorId: 'dev-1',
    executor: () => conn,
    timeoutMs: 60_000,
    log: silentLogger(),
  });
  const conn = fakeConnection(codec, sent);
  const signal = new AbortController().signal;
  const roundTrip = async (): Promise<void> => {
    const p = dispatcher.execute(batch, signal);
    const d = decodeClientMessage(codec, frame, isBinary);
    if (!d.ok || d.value.type !== 'command_results') throw new Error('decode failed');
    dispatcher.deliver(sent.responseId, d.value.action_results);
    await p;
  };
  const size = typeof frame === 'string' ? Buffer.byteLength(frame) : frame.byteLength;
  return [
    await measure(`${codec.name}: decode command_results (${size} B)`, () =>
      decodeClientMessage(codec, frame, isBinary),
    ),
    await measure(`${codec.name}: encode command`, () => encodeServerMessage(codec, commandMsg)),
    await measure(`${codec.name}: dispatch round (execute + encode + decode + deliver)`, roundTrip),
  ];
}

async function main(): Promise<void> {
  const rows = [...(await forCodec(jsonCodec)), ...(await forCodec(msgpackCodec))];
  printTable(`dispatch hot path (node ${process.version})`, rows);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
