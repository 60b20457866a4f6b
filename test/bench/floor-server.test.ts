/**
 * The bench's floor model (bench/servers/uws-floor.ts) as a real process on port 0. The issue-14 targets are read
 * against it, so it must do what its header says: answer each `command_results` with the same message, only after
 * the step's two event rows and its checkpoint are committed to aipd's own schema, and remove its database on
 * SIGTERM.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { floorTaskIds } from '../../bench/lib/floor-rows.js';

const SERVER = fileURLToPath(new URL('../../bench/servers/uws-floor.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function results(step: number): Record<string, unknown> {
  return {
    type: 'command_results',
    client_id: 'dev-0',
    session_id: 'bench',
    status: 'continue',
    action_results: [{ status: 'success', result: { step }, error: null, call_id: `call-${step}` }],
  };
}

describe('bench floor server (bench/servers/uws-floor.ts)', () => {
  let child: ChildProcessWithoutNullStreams | null = null;
  afterEach(() => {
    child?.kill('SIGKILL');
    child = null;
  });

  it('answers each results frame with it, after committing its events and checkpoint, and cleans up on SIGTERM', async () => {
    const proc = spawn(process.execPath, ['--import', 'tsx', SERVER], {
      cwd: ROOT,
      env: { ...process.env, FLOOR_TASKS: '4' },
    });
    child = proc;
    const stderr: string[] = [];
    proc.stderr.on('data', (b: Buffer) => stderr.push(b.toString()));
    let dbPath = '';
    const port = await new Promise<number>((resolve, reject) => {
      createInterface({ input: proc.stdout }).on('line', (l) => {
        const db = /^database (.+)$/.exec(l);
        if (db) dbPath = db[1]!;
        const m = /^listening (\d+)$/.exec(l);
        if (m) resolve(Number(m[1]));
      });
      proc.once('exit', (code) =>
        reject(new Error(`floor server exited early (${code}): ${stderr.join('')}`)),
      );
    });
    expect(dbPath).toMatch(/aipd-bench-floor-.+floor\.sqlite$/);

    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const replies: unknown[] = [];
    ws.on('message', (data: Buffer) => replies.push(JSON.parse(data.toString('utf8'))));
    // The first connection writes the steps of the first task.
    const db = new Database(dbPath, { readonly: true });
    const id = floorTaskIds(4)[0]!;
    const count = db.prepare(
      'SELECT type, count(*) AS n FROM session_events WHERE session_id = ? GROUP BY type',
    );
    const checkpoint = db.prepare('SELECT checkpoint FROM session_progress WHERE id = ?').pluck();
    try {
      for (let step = 0; step < 3; step++) {
        const sent = results(step);
        ws.send(JSON.stringify(sent));
        await new Promise<void>((resolve) => ws.once('message', () => resolve()));
        expect(replies[step]).toEqual(sent);
        // Answered only once committed: the rows are there when the reply is.
        expect(count.all(id)).toEqual(
          expect.arrayContaining([
            { type: 'task.commands', n: step + 1 },
            { type: 'task.results', n: step + 1 },
          ]),
        );
        expect(JSON.parse(checkpoint.get(id) as string)).toEqual({ aip_steps: step + 1 });
      }
      const last = db
        .prepare(
          "SELECT data FROM session_events WHERE session_id = ? AND type = 'task.results' ORDER BY id DESC",
        )
        .pluck()
        .get(id) as string;
      expect(JSON.parse(last)).toEqual({
        updates: ['checkpoint'],
        step: 2,
        statuses: ['success'],
        results: results(2).action_results,
      });
    } finally {
      db.close();
      ws.close();
    }

    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    child = null;
    expect(existsSync(dirname(dbPath))).toBe(false);
  });
});
