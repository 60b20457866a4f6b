/**
 * The `plan` agent: runs a plan's action steps in order, one `command` batch per step, with no LLM.
 *
 * Outcome (`task_end.result`): `{ steps_completed: n, steps: [{ step: i, results: Result[] }, ...] }` in step order.
 * - Every step succeeded (or the plan has no steps) → `completed`.
 * - A step's results include a `failure` → `failed` with PLAN_STEP_FAILED naming the step (0-based) and the tool;
 *   that step's results are included in `steps`, and `steps_completed` counts only the steps before it.
 * - A plain-language step → `failed` with PLAN_STEP_NOT_EXECUTABLE (nothing of it is sent).
 * - Plan text (from `request`, or a plan file) that does not parse or validate → `failed` with INVALID_PLAN naming the field.
 * - Cancelled while a batch runs (the session throws into the `yield`) → `failed` with the partial result.
 */
import { aipError } from '../../protocol/index.js';
import type { Result } from '../../protocol/index.js';
import type { Agent, AgentContext, AgentOutcome, AgentRun, CommandBatch } from './contract.js';
import { loadPlanFile, parsePlanText } from './plan.js';
import type { ActionStep, Plan } from './plan.js';

export interface PlanStepRecord {
  step: number;
  results: Result[];
}
export interface PlanResult {
  steps_completed: number;
  steps: PlanStepRecord[];
}

export interface PlanAgentOptions {
  /** A plan to run instead of the one in the task's `request`. */
  plan?: Plan;
  /** A plan file to read (at each run) instead of the task's `request`. Ignored when `plan` is given. */
  planFile?: string;
}

export const PLAN_AGENT_NAME = 'plan';

function toBatch(step: ActionStep): CommandBatch {
  const batch: CommandBatch = { actions: step.actions };
  if (step.agent_name !== undefined) batch.agent_name = step.agent_name;
  if (step.process_name !== undefined) batch.process_name = step.process_name;
  if (step.root_name !== undefined) batch.root_name = step.root_name;
  return batch;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class PlanAgent implements Agent {
  readonly name = PLAN_AGENT_NAME;
  private readonly plan: Plan | undefined;
  private readonly planFile: string | undefined;

  constructor(options: PlanAgentOptions = {}) {
    this.plan = options.plan;
    this.planFile = options.planFile;
  }

  async *run(ctx: AgentContext): AgentRun {
    const record: PlanResult = { steps_completed: 0, steps: [] };
    let plan = this.plan;
    if (!plan) {
      let parsed: ReturnType<typeof parsePlanText>;
      try {
        parsed = this.planFile !== undefined ? await loadPlanFile(this.planFile) : parsePlanText(ctx.request);
      } catch (e) {
        return failed(
          record,
          aipError('INVALID_PLAN', { detail: `cannot read ${this.planFile}: ${errorText(e)}` }).message,
        );
      }
      if (!parsed.ok) return { status: 'failed', result: record, error: parsed.error.message };
      plan = parsed.plan;
    }
    const steps = plan.steps;
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i]!;
      if (typeof step === 'string')
        return failed(record, aipError('PLAN_STEP_NOT_EXECUTABLE', { step: i }).message);
      let results: Result[];
      try {
        results = yield toBatch(step);
      } catch (e) {
        return failed(record, errorText(e));
      }
      record.steps.push({ step: i, results });
      const bad = results.findIndex((r) => r.status === 'failure');
      if (bad >= 0) {
        const tool = step.actions[bad]?.tool_name ?? '';
        const error = results[bad]?.error ?? 'unknown error';
        return failed(record, aipError('PLAN_STEP_FAILED', { step: i, tool, error }).message);
      }
      record.steps_completed = i + 1;
    }
    return { status: 'completed', result: record, error: null };
  }
}

function failed(result: PlanResult, error: string): AgentOutcome {
  return { status: 'failed', result, error };
}
