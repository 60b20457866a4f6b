/**
 * The floor model: a uWS server that does, for every round trip, only the work no durable AIP server can skip, and
 * nothing else (no protocol checks, sessions, agents, events, metrics or logging):
 * 1. parse the `command_results` JSON text;
 * 2. record the step as aipd's default store does, in raw SQL (bench/lib/floor-rows.ts): the two event rows and the
 *    checkpoint UPDATE, every message of one event-loop turn in one transaction (src/state/group-commit.ts, as the
 *    store batches: on setImmediate);
 * 3. once that is committed, reply with a JSON frame made from the parsed message (the same size as the request).
 * It is given every advantage: SQLite never checkpoints (the WAL grows for the life of the process, so no commit
 * ever waits for a checkpoint), and the reply is the parsed frame encoded again, not a new command.
 * The bench's `floor` and `floor-lat` scenarios measure it beside `uws-echo` and `aip-json`, so the issue-14 targets
 * can be read against what a server doing only this costs on the same machine in the same run.
 * Prints `database <path>`, then `listening <port>` on stdout; exits on SIGTERM/SIGINT, removing its database.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import uWS from 'uWebSockets.js';
import type { Result } from '../../protocol/index.js';
import { GroupCommit } from '../../src/state/group-commit.js';
import { SqliteSessionStore } from '../../src/state/sqlite-session-store.js';
import { FloorWriter, floorTaskIds, stepData, taskRecorder, type FloorStep } from '../lib/floor-rows.js';
import { BENCH_WS_SETTINGS, listenUntilSignal } from './uws-listen.js';

/** Task records made up front; connections take them in turn (the bench's `--conns`, at least). */
const TASKS = Number(process.env.FLOOR_TASKS ?? 256);
/** Steps per transaction at most, as aipd's store bounds its batches. */
const MAX_BATCH = 256;

interface Conn {
  id: string;
  steps: number;
  closed: boolean;
}
interface Pending extends FloorStep {
  ws: uWS.WebSocket<Conn>;
  conn: Conn;
  reply: unknown;
}

const dir = mkdtempSync(join(tmpdir(), 'aipd-bench-floor-'));
const path = join(dir, 'floor.sqlite');
const made = await taskRecorder(new SqliteSessionStore({ path, checkpointMs: 0 }), TASKS, []);
await made.close();
const writer = new FloorWriter(path);
// For whoever reads the rows meanwhile (test/bench/floor-server.test.ts); the bench waits only for `listening`.
console.log(`database ${path}`);
writer.noAutoCheckpoint();
const ids = floorTaskIds(TASKS);
const decoder = new TextDecoder();
let nextTask = 0;
/** The frames of one event-loop turn, committed together (aipd's own group commit), then answered. */
const commits = new GroupCommit<Pending>(
  0,
  (batch) => {
    writer.write(batch);
    for (const p of batch) if (!p.conn.closed) p.ws.send(JSON.stringify(p.reply), false);
  },
  MAX_BATCH,
);

const app = uWS.App().ws<Conn>('/*', {
  ...BENCH_WS_SETTINGS,
  upgrade: (res, req, context) => {
    res.upgrade<Conn>(
      { id: ids[nextTask++ % TASKS]!, steps: 0, closed: false },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  message: (ws, msg) => {
    const conn = ws.getUserData();
    const reply = JSON.parse(decoder.decode(msg)) as { action_results?: Result[] };
    const results = Array.isArray(reply.action_results) ? reply.action_results : [];
    commits.add({
      ws,
      conn,
      reply,
      id: conn.id,
      steps: ++conn.steps,
      data: stepData(conn.steps - 1, results),
    });
  },
  close: (ws) => {
    ws.getUserData().closed = true;
  },
});
listenUntilSignal(app, 'uws-floor', () => {
  writer.close();
  rmSync(dir, { recursive: true, force: true });
});
