/**
 * The `plan` agent: runs a plan's action steps in order, one `command` batch per step, with no LLM.
 *
 * Outcome (`task_end.result`): `{ steps_completed: n, steps: [{ step: i, results: Result[] }, ...] }` in step order.
 * - The outcome is held in memory until the task ends, so the results it keeps whole are bounded: a step's results
 *   are kept while the total (estimated JSON size, `jsonSizeEstimate`) stays within `resultMaxBytes`. A step whose
 *   results do not fit is listed as `{ step, results: [], results_omitted: { count, bytes } }`. Its results are
 *   whole in the session's `task.results` event for that step (GET /sessions/{id}/events), and they still decide
 *   whether the step failed.
 * - A resumed task's steps whose recorded results were trimmed from the log are listed as
 *   `{ step, results: [], results_trimmed: true }` (they succeeded: the plan went on after them).
 * - Every step succeeded (or the plan has no steps) → `completed`.
 * - A step's results include a `failure` → `failed` with PLAN_STEP_FAILED naming the step (0-based), the tool and
 *   the device's error text, cut to `errorMaxBytes` of UTF-8 (`truncateUtf8`, which says how much was left out),
 *   since the task's error is stored with the session and sent in `task_end`; that step's results are included in `steps`, and
 *   `steps_completed` counts only the steps before it.
 * - A plain-language step → `failed` with PLAN_STEP_NOT_EXECUTABLE (nothing of it is sent).
 * - Plan text (from `request`, or a plan file) that does not parse or validate → `failed` with INVALID_PLAN naming the field.
 * - Cancelled while a batch runs (the session throws into the `yield`) → `failed` with the partial result.
 */
import { aipError } from '../../protocol/index.js';
import type { Result } from '../../protocol/index.js';
import { jsonSizeEstimate } from '../lib/json-bound.js';
import { truncateUtf8 } from '../lib/truncate.js';
import { isTrimmedReplay } from './contract.js';
import type { Agent, AgentContext, AgentOutcome, AgentRun, CommandBatch } from './contract.js';
import { loadPlanFile, parsePlanText } from './plan.js';
import type { ActionStep, Plan } from './plan.js';

export interface PlanStepRecord {
  step: number;
  /** The step's results; empty when they were left out (see `results_omitted`). */
  results: Result[];
  /** Set when the results did not fit in the outcome's budget: how many there were and their estimated JSON size. */
  results_omitted?: { count: number; bytes: number };
  /**
   * Set when the step ran before a crash and its results were trimmed from the session's log (`--event-log-max`)
   * before the task resumed: it succeeded (the plan went on after it), but its results are gone.
   */
  results_trimmed?: true;
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
  /** Estimated JSON bytes of step results the outcome keeps whole (see above). Default PLAN_RESULT_MAX_BYTES. */
  resultMaxBytes?: number;
  /** UTF-8 bytes of a device's error text that PLAN_STEP_FAILED quotes (see above). Default PLAN_ERROR_MAX_BYTES. */
  errorMaxBytes?: number;
}

/** The default `resultMaxBytes` (the server's --plan-result-max-bytes): 16 MiB. */
export const PLAN_RESULT_MAX_BYTES = 16 * 1024 * 1024;

/** The default `errorMaxBytes` (the server's --plan-error-max-bytes). */
export const PLAN_ERROR_MAX_BYTES = 4096;

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
  private readonly resultMaxBytes: number;
  private readonly errorMaxBytes: number;

  constructor(options: PlanAgentOptions = {}) {
    this.plan = options.plan;
    this.planFile = options.planFile;
    this.resultMaxBytes = options.resultMaxBytes ?? PLAN_RESULT_MAX_BYTES;
    this.errorMaxBytes = options.errorMaxBytes ?? PLAN_ERROR_MAX_BYTES;
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
    let kept = 0;
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
      if (isTrimmedReplay(results)) {
        record.steps.push({ step: i, results: [], results_trimmed: true });
        record.steps_completed = i + 1;
        continue;
      }
      const bytes = jsonSizeEstimate(results);
      if (kept + bytes <= this.resultMaxBytes) {
        kept += bytes;
        record.steps.push({ step: i, results });
      } else record.steps.push({ step: i, results: [], results_omitted: { count: results.length, bytes } });
      const bad = results.findIndex((r) => r.status === 'failure');
      if (bad >= 0) {
        const tool = step.actions[bad]?.tool_name ?? '';
        const error = truncateUtf8(String(results[bad]?.error ?? 'unknown error'), this.errorMaxBytes);
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
