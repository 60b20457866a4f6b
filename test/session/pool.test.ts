import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionFactory } from '../../src/session/factory.js';
import { SessionPool } from '../../src/session/pool.js';
import type { Session } from '../../src/session/session.js';
import { TaskStatusFile, defaultStatusPath } from '../../src/session/task-status.js';
import { FakeExecutor } from '../helpers/fake-executor.js';

const act = (tool_name: string) => ({ tool_name, tool_type: 'action', parameters: {} });
const plan = (...tools: string[]) =>
  JSON.stringify({ task: 't', object: 'doc.docx', steps: tools.map((t) => ({ actions: [act(t)] })) });

describe('SessionPool concurrency', () => {
  it('never runs more than `concurrency` sessions at once, and returns outcomes in input order', async () => {
    const factory = new SessionFactory();
    const shared = new FakeExecutor({ delayMs: 5 });
    let maxActive = 0;
    const pool: SessionPool = new SessionPool({
      concurrency: 3,
      factory,
      executorFor: () => ({
        execute: (batch, signal) => {
          maxActive = Math.max(maxActive, pool.active);
          return shared.execute(batch, signal);
        },
      }),
    });
    const sessions = Array.from({ length: 10 }, (_, i) =>
      factory.create({
        mode: 'service',
        platform: 'linux',
        sessionId: `s${i}`,
        taskName: `t${i}`,
        request: plan(`a${i}`, `b${i}`),
      }),
    );
    const outcomes = await pool.run(sessions);
    expect(outcomes.map((o) => o.sessionId)).toEqual(sessions.map((s) => s.id));
    expect(outcomes.every((o) => o.outcome.status === 'completed' && o.state === 'completed')).toBe(true);
    expect(shared.batches).toHaveLength(20);
    expect(shared.maxInFlight).toBe(3); // the limit was reached and never exceeded
    expect(maxActive).toBe(3);
    expect(pool.active).toBe(0);
  });

  it('applies the limit across separate run() calls', async () => {
    const factory = new SessionFactory();
    const ex = new FakeExecutor({ delayMs: 5 });
    const pool = new SessionPool({ concurrency: 2, executorFor: () => ex, factory });
    const mk = (i: number) =>
      factory.create({
        mode: 'service',
        platform: 'mobile',
        sessionId: `m${i}`,
        taskName: 'x',
        request: plan('a'),
      });
    await Promise.all([pool.run([mk(1), mk(2), mk(3)]), pool.run([mk(4), mk(5), mk(6)])]);
    expect(ex.batches).toHaveLength(6);
    expect(ex.maxInFlight).toBe(2);
  });

  it('gives each session its own executor and can cancel everything', async () => {
    const factory = new SessionFactory();
    const executors = new Map<string, FakeExecutor>();
    const pool = new SessionPool({
      concurrency: 1,
      factory,
      executorFor: (s: Session) => {
        const ex = new FakeExecutor({ hangOn: ['hang'] });
        executors.set(s.id, ex);
        return ex;
      },
    });
    const sessions = ['p', 'q'].map((id) =>
      factory.create({
        mode: 'service',
        platform: 'linux',
        sessionId: id,
        taskName: id,
        request: plan('hang'),
      }),
    );
    const p = pool.run(sessions);
    await new Promise((r) => setTimeout(r, 10));
    expect(pool.active).toBe(1);
    expect(pool.cancelAll('shutdown')).toBe(2);
    const outcomes = await p;
    expect(outcomes.map((o) => [o.sessionId, o.state, o.outcome.error])).toEqual([
      ['p', 'cancelled', 'shutdown'],
      ['q', 'cancelled', 'shutdown'],
    ]);
    expect([...executors.keys()]).toEqual(['p', 'q']);
    expect(executors.get('q')!.batches).toHaveLength(0); // q was cancelled while queued
  });

  it('rejects a concurrency below 1', () => {
    expect(() => new SessionPool({ concurrency: 0, executorFor: () => new FakeExecutor() })).toThrow(
      RangeError,
    );
  });
});

describe('SessionPool folder runs', () => {
  let root: string;
  let folder: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'aipd-pool-'));
    folder = join(root, 'tasks');
    await mkdir(folder);
    await writeFile(join(folder, 'one.json'), plan('a1', 'a2'));
    await writeFile(join(folder, 'two.json'), plan('bad'));
    await writeFile(join(folder, 'three.json'), plan('c1'));
    await writeFile(join(folder, 'four.json'), JSON.stringify({ steps: ['Open Word'] }));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('batch_normal: creates the status file, marks completed stems true, keeps failed ones false, then resumes', async () => {
    const ex = new FakeExecutor({ failOn: { bad: 'nope' } });
    const pool = new SessionPool({ concurrency: 2, executorFor: () => ex });
    const first = await pool.runFolder({
      folder,
      mode: 'batch_normal',
      platform: 'windows',
      sessionIdFor: (stem, i) => `${i}-${stem}`,
    });
    expect(first.statusFile).toBe(join(root, 'tasks_status.json'));
    expect(first.statusFile).toBe(defaultStatusPath(folder));
    expect(first.skipped).toEqual([]);
    expect(first.outcomes.map((o) => [o.stem, o.taskName, o.sessionId, o.outcome.status])).toEqual([
      ['four', 'tasks/four', '0-four', 'failed'],
      ['one', 'tasks/one', '1-one', 'completed'],
      ['three', 'tasks/three', '2-three', 'completed'],
      ['two', 'tasks/two', '3-two', 'failed'],
    ]);
    expect(first.statusErrors).toEqual([]);
    const status = JSON.parse(await readFile(first.statusFile!, 'utf8'));
    expect(status).toEqual({
      'tasks/four': false,
      'tasks/one': true,
      'tasks/three': true,
      'tasks/two': false,
    });
    // plan object picks the application for later batches
    expect(ex.batches.find((b) => b.actions[0]!.tool_name === 'a2')).toMatchObject({
      agent_name: 'AppAgent',
      process_name: 'WINWORD.EXE',
    });

    // Resume: only the stems still false run again.
    const ex2 = new FakeExecutor();
    const second = await new SessionPool({ concurrency: 2, executorFor: () => ex2 }).runFolder({
      folder,
      mode: 'batch_normal',
      platform: 'windows',
    });
    expect(second.skipped).toEqual(['one', 'three']);
    expect(second.outcomes.map((o) => [o.stem, o.outcome.status])).toEqual([
      ['four', 'failed'],
      ['two', 'completed'],
    ]);
    expect(ex2.batches.map((b) => b.actions[0]!.tool_name)).toEqual(['bad']);
    expect(JSON.parse(await readFile(first.statusFile!, 'utf8'))).toEqual({
      'tasks/four': false,
      'tasks/one': true,
      'tasks/three': true,
      'tasks/two': true,
    });
    // no temporary files left behind
    expect((await readdir(root)).sort()).toEqual(['tasks', 'tasks_status.json']);
  });

  it('batch_normal honours an existing status file and an explicit location', async () => {
    const statusFile = join(root, 'custom-status.json');
    await writeFile(statusFile, JSON.stringify({ one: true, two: 'yes', gone: true }));
    const ex = new FakeExecutor();
    const report = await new SessionPool({ concurrency: 4, executorFor: () => ex }).runFolder({
      folder,
      mode: 'batch_normal',
      platform: 'linux',
      statusFile,
    });
    expect(report.skipped).toEqual(['one']);
    expect(report.outcomes.map((o) => o.stem)).toEqual(['four', 'three', 'two']);
    // Its bare-stem (UFO) entries were written for this folder: they become its keys.
    expect(JSON.parse(await readFile(statusFile, 'utf8'))).toEqual({
      'tasks/one': true,
      'tasks/two': true,
      'tasks/gone': true,
      'tasks/three': true,
      'tasks/four': false,
    });
  });

  it('follower runs every file on linux and mobile and writes no status file', async () => {
    for (const platform of ['linux', 'mobile'] as const) {
      const ex = new FakeExecutor();
      const report = await new SessionPool({ concurrency: 2, executorFor: () => ex }).runFolder({
        folder,
        mode: 'follower',
        platform,
      });
      expect(report.statusFile).toBeNull();
      expect(report.outcomes.map((o) => [o.stem, o.outcome.status])).toEqual([
        ['four', 'failed'],
        ['one', 'completed'],
        ['three', 'completed'],
        ['two', 'completed'],
      ]);
      const agent = platform === 'linux' ? 'LinuxAgent' : 'MobileAgent';
      expect(ex.batches.every((b) => b.agent_name === agent)).toBe(true);
      expect(ex.batches).toHaveLength(4);
    }
    expect(await readdir(root)).toEqual(['tasks']);
  });

  it('a plan file that is not valid JSON fails its task with INVALID_PLAN', async () => {
    await writeFile(join(folder, 'zz.json'), '{ nope');
    const report = await new SessionPool({ concurrency: 1, executorFor: () => new FakeExecutor() }).runFolder(
      { folder, mode: 'follower', platform: 'windows' },
    );
    expect(report.outcomes.at(-1)).toMatchObject({ stem: 'zz', outcome: { status: 'failed' } });
    expect(report.outcomes.at(-1)!.outcome.error).toMatch(/^Invalid plan: not valid JSON/);
  });

  it('throws the typed error for an unsupported platform before running anything', async () => {
    const ex = new FakeExecutor();
    await expect(
      new SessionPool({ concurrency: 1, executorFor: () => ex }).runFolder({
        folder,
        mode: 'follower',
        platform: 'macos',
      }),
    ).rejects.toMatchObject({
      kind: 'PLATFORM_NOT_SUPPORTED',
    });
    expect(ex.batches).toHaveLength(0);
  });
});

describe('TaskStatusFile', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'aipd-status-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('serialises concurrent writes so the last state wins', async () => {
    const path = join(root, 'tasks_status.json');
    const f = await TaskStatusFile.open(path, ['a', 'b', 'c']);
    await Promise.all([f.markDone('a'), f.markDone('b'), f.markDone('c')]);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ a: true, b: true, c: true });
    expect(f.isDone('b')).toBe(true);
  });

  it('keys plans by folder and stem, and adopts bare-stem (UFO) entries only for the folder they match best', async () => {
    const path = join(root, 'tasks_status.json');
    const folders = { A: ['deploy', 'x'], B: ['deploy', 'c1', 'c2'], C: ['deploy', 'x'] };
    for (const [name, stems] of Object.entries(folders)) {
      await mkdir(join(root, name));
      for (const stem of stems) await writeFile(join(root, name, `${stem}.json`), plan(stem));
    }
    // A UFO file written for A: { stem: done }.
    await writeFile(path, JSON.stringify({ deploy: true, x: false }));
    const read = async () => JSON.parse(await readFile(path, 'utf8')) as Record<string, boolean>;

    // B shares a stem with it but matches it worse than A: B's deploy never ran.
    const b = await TaskStatusFile.open(path, ['deploy'], join(root, 'B'));
    expect(b.isDone('deploy')).toBe(false);
    expect(await read()).toEqual({ deploy: true, x: false, 'B/deploy': false });
    // C matches as well as A: nobody can tell whose they are, so C does not take them either.
    expect((await TaskStatusFile.open(path, ['deploy', 'x'], join(root, 'C'))).isDone('deploy')).toBe(false);

    await rm(join(root, 'C'), { recursive: true });
    const a = await TaskStatusFile.open(path, ['deploy', 'x'], join(root, 'A'));
    expect(a.isDone('deploy')).toBe(true);
    expect(a.isDone('x')).toBe(false);
    await a.markDone('x');
    expect(await read()).toEqual({
      'A/deploy': true,
      'A/x': true,
      'B/deploy': false,
      'C/deploy': false,
      'C/x': false,
    });
    // Adopted once: B still does not see A's entries.
    expect((await TaskStatusFile.open(path, ['deploy'], join(root, 'B'))).isDone('deploy')).toBe(false);
    // A status file inside the plan folder, or elsewhere.
    expect((await TaskStatusFile.open(join(root, 'A', 's.json'), ['x'], join(root, 'A'))).snapshot()).toEqual(
      {
        './x': false,
      },
    );
    expect((await TaskStatusFile.open(join(root, 'B', 's.json'), ['x'], join(root, 'A'))).snapshot()).toEqual(
      { '../A/x': false },
    );
  });

  it('refuses a file that is not a JSON object and leaves it untouched', async () => {
    const path = join(root, 'tasks_status.json');
    await writeFile(path, '[1,2]');
    await expect(TaskStatusFile.open(path, ['a'])).rejects.toThrow('is not a JSON object');
    expect(await readFile(path, 'utf8')).toBe('[1,2]');
  });
});
