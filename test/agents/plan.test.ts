import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isPlanRequest,
  listPlanFiles,
  loadPlanFile,
  parsePlan,
  parsePlanText,
  planObjectOf,
} from '../../src/agents/plan.js';

const action = { tool_name: 'click_input', tool_type: 'action', parameters: { id: '1' } };

describe('plan parsing', () => {
  it("accepts UFO's plain-language format and lower-cases object", () => {
    const r = parsePlan({
      task: 'Summarize',
      object: 'Report.DOCX',
      steps: ['Open the Review tab', 'Click Word Count'],
      close: false,
    });
    expect(r).toEqual({
      ok: true,
      plan: {
        task: 'Summarize',
        object: 'report.docx',
        steps: ['Open the Review tab', 'Click Word Count'],
        close: false,
      },
    });
  });

  it('accepts action steps with routing overrides and fills Command defaults', () => {
    const r = parsePlan({
      steps: [
        { actions: [{ tool_name: 'wait', tool_type: 'action' }], agent_name: 'AppAgent', root_name: null },
      ],
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.plan.object).toBeNull();
    expect(r.plan.steps[0]).toEqual({
      actions: [{ tool_name: 'wait', tool_type: 'action', parameters: null, call_id: null }],
      agent_name: 'AppAgent',
      root_name: null,
    });
  });

  it.each([
    [{ steps: 'do things' }, 'steps'],
    [{}, 'steps'],
    [{ steps: [{ actions: [{ tool_name: 'x', tool_type: 'bogus' }] }] }, 'steps[0].actions[0].tool_type'],
    [{ steps: ['ok', { actions: [{ tool_type: 'action' }] }] }, 'steps[1].actions[0].tool_name'],
    [{ steps: [{ action: [] }] }, 'steps[0].actions'],
    [{ steps: [{ actions: [{ ...action, parameters: [1] }] }] }, 'steps[0].actions[0].parameters'],
    [{ object: 5, steps: [] }, 'object'],
  ])('rejects %j naming %s', (value, field) => {
    const r = parsePlan(value);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.kind).toBe('INVALID_PLAN');
    expect(r.error.message.startsWith(`Invalid plan: ${field}: `)).toBe(true);
  });

  it('rejects non-objects and bad JSON', () => {
    expect(parsePlan([1])).toMatchObject({
      ok: false,
      error: { message: 'Invalid plan: a plan must be a JSON object' },
    });
    const r = parsePlanText('{"steps": [');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(/^Invalid plan: not valid JSON/);
  });

  it('recognises inline plans and reads their object', () => {
    expect(isPlanRequest('{"steps": []}')).toBe(true);
    expect(isPlanRequest('  {"steps": "x"}')).toBe(true);
    expect(isPlanRequest('{"task": "x"}')).toBe(false);
    expect(isPlanRequest('open notepad')).toBe(false);
    expect(isPlanRequest('[{"steps": []}]')).toBe(false);
    expect(isPlanRequest('{broken')).toBe(false);
    expect(planObjectOf('{"object": "A.XLSX", "steps": []}')).toBe('a.xlsx');
    expect(planObjectOf('{"steps": []}')).toBeNull();
    expect(planObjectOf('hello')).toBeNull();
  });
});

describe('plan files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aipd-plan-'));
    await mkdir(join(dir, 'tasks'));
    await mkdir(join(dir, 'tasks', 'sub.json')); // a folder named like a plan: ignored
    await writeFile(join(dir, 'tasks', 'b.json'), JSON.stringify({ steps: [] }));
    await writeFile(join(dir, 'tasks', 'a.json'), JSON.stringify({ object: 'X.docx', steps: ['s'] }));
    await writeFile(join(dir, 'tasks', 'notes.txt'), 'no');
    await writeFile(join(dir, 'outside.json'), '{}');
    await symlink(join(dir, 'outside.json'), join(dir, 'tasks', 'link.json'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lists only regular *.json files directly in the folder, sorted, with absolute paths', async () => {
    const files = await listPlanFiles(join(dir, 'tasks'));
    expect(files).toEqual([
      { stem: 'a', path: join(dir, 'tasks', 'a.json') },
      { stem: 'b', path: join(dir, 'tasks', 'b.json') },
    ]);
  });

  it('loads a plan file', async () => {
    const r = await loadPlanFile(join(dir, 'tasks', 'a.json'));
    expect(r).toEqual({ ok: true, plan: { object: 'x.docx', steps: ['s'] } });
  });
});
