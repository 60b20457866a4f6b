/**
 * Micro benchmarks of the pieces of the `command` → `command_results` step that the server CPU profile
 * shows (see bench/README.md): catalogue error construction, wire building, the codecs' decode without
 * validation, zod validation of a decoded `command_results`, and one session step (session + plan agent +
 * an executor that answers at once). Run: `npm run build && node dist/bench/micro/hotpath.js`.
 */
import {
  aipError,
  decodeClientMessage,
  encodeClientMessage,
  encodeServerMessage,
  jsonCodec,
  msgpackCodec,
  serverWire,
  validateClientMessage,
  type Result,
} from '../../protocol/index.js';
import { PlanAgent } from '../../src/agents/plan-agent.js';
import { LinuxServiceSession } from '../../src/session/service-sessions.js';
import type { CommandBatch, CommandExecutor } from '../../src/session/types.js';
import { commandMsg, resultsMsg } from './frames.js';
import { measure, printTable, type MicroResult } from './harness.js';

const STEPS = 1000;
const planRequest = JSON.stringify({
  task: 'bench',
  steps: Array.from({ length: STEPS }, (_, i) => ({
    actions: [{ tool_name: 'noop', tool_type: 'action', parameters: { i } }],
  })),
});

/** Answers every batch at once with one success per action, like the bench device. */
const instantExecutor: CommandExecutor = {
  execute(batch: CommandBatch): Promise<Result[]> {
    return Promise.resolve(
      batch.actions.map(() => ({
        status: 'success',
        error: null,
        result: null,
        namespace: null,
        call_id: null,
      })),
    );
  },
};

async function sessionSteps(): Promise<void> {
  const s = new LinuxServiceSession({
    sessionId: 's',
    taskName: 't',
    request: planRequest,
    mode: 'service',
    agent: new PlanAgent(),
  });
  const out = await s.run(instantExecutor);
  if (out.status !== 'completed') throw new Error(`session ended ${out.status}: ${out.error}`);
}

async function main(): Promise<void> {
  const jsonFrame = encodeClientMessage(jsonCodec, resultsMsg);
  const mpFrame = encodeClientMessage(msgpackCodec, resultsMsg);
  const badJson = (jsonFrame as string).replace('"continue"', '"bogus"');
  const parsed = JSON.parse(jsonFrame as string) as unknown;
  if (decodeClientMessage(jsonCodec, badJson, false).ok) throw new Error('bad frame decoded');
  const rows: MicroResult[] = [
    await measure('aipError(COMMAND_TIMEOUT)', () => aipError('COMMAND_TIMEOUT', { ms: 1 })),
    await measure('json: decode invalid frame (error path)', () =>
      decodeClientMessage(jsonCodec, badJson, false),
    ),
    await measure('serverWire(command)', () => serverWire(commandMsg)),
    await measure('json: encodeServerMessage(command)', () => encodeServerMessage(jsonCodec, commandMsg)),
    await measure('msgpack: encodeServerMessage(command)', () =>
      encodeServerMessage(msgpackCodec, commandMsg),
    ),
    await measure('json: codec.decode (no validation)', () => jsonCodec.decode(jsonFrame, false)),
    await measure('msgpack: codec.decode (no validation)', () => msgpackCodec.decode(mpFrame, true)),
    await measure('validateClientMessage(command_results)', () => validateClientMessage(parsed)),
  ];
  const sess = await measure(`session + plan agent, ${STEPS} steps (instant executor)`, sessionSteps, {
    reps: 5,
  });
  rows.push(sess, {
    name: '  … per step',
    ns_per_op: Math.round(sess.ns_per_op / STEPS),
    ops_per_s: sess.ops_per_s * STEPS,
    reps: sess.reps,
  });
  printTable(`hot-path pieces (node ${process.version})`, rows);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
