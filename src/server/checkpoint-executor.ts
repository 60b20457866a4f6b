/**
 * The executor a task session runs on, with checkpoints: every batch's results are recorded as they arrive (the
 * task's checkpoint counts the batches done; each batch's results are in its `task.results` event, written in the
 * same commit, before the agent is given them), and a resumed task replays the recorded results of the batches it had finished instead of sending
 * them again. A deterministic agent (the plan agent) then goes on at the first batch whose results were not
 * recorded: at most the batch in flight at the crash runs twice (at-least-once for that step).
 *
 * An agent that is not deterministic (the `llm` agent: a model decides each batch) keeps its own state in the
 * checkpoint too (`agent`, saved before each batch is sent and after its results are in). Resumed, it goes on from
 * that state rather than from the start, so its next batch is batch `agent.batches`, and replay starts there: the
 * batch it had in flight is replayed if its results were recorded, and sent again otherwise.
 */
import type { Result } from '../../protocol/index.js';
import { trimmedResults } from '../agents/contract.js';
import type { AgentCheckpoint, CommandBatch, CommandExecutor } from '../session/types.js';
import type { SessionEvent } from '../state/session-store.js';

/** The checkpoint aipd writes for a task it runs. */
export interface TaskCheckpoint {
  /** Batches whose results are recorded. */
  readonly aip_steps: number;
  /**
   * An agent's own state (the `llm` agent's conversation), saved by the agent. A resumed agent goes on from it,
   * and its next batch is batch `agent.batches`: replay starts there, not at 0.
   */
  readonly agent?: AgentCheckpoint;
}

/**
 * Each recorded batch's results, by batch index, from a task's `task.results` events (the last one of a step wins).
 * The log keeps a session's newest `--event-log-max` events, so a long task's oldest steps may be gone: the batches
 * before the oldest one still in the log are replayed as trimmed (`trimmedResults`), not sent again. Replay ends at
 * the first batch after that with no recorded results.
 */
export function replayFrom(events: readonly SessionEvent[], steps: number): Result[][] {
  const out: (Result[] | undefined)[] = [];
  for (const e of events) {
    if (e.type !== 'task.results') continue;
    const step = e.data.step;
    if (typeof step === 'number' && step < steps && Array.isArray(e.data.results))
      out[step] = e.data.results as Result[];
  }
  // Every batch below `steps` was recorded; those before the oldest one left were trimmed.
  const oldest = out.findIndex((r) => r !== undefined);
  const first = oldest === -1 ? steps : oldest;
  for (let i = 0; i < first; i++) out[i] = trimmedResults();
  // Only an unbroken run can be replayed.
  const n = out.findIndex((r) => r === undefined);
  return (n === -1 ? out : out.slice(0, n)) as Result[][];
}

export class CheckpointExecutor implements CommandExecutor {
  private index = 0;
  /** The recorded batches not replayed yet (each is let go once replayed: the agent keeps what it needs). */
  private readonly recorded: (Result[] | undefined)[];

  constructor(
    private readonly inner: CommandExecutor,
    recorded: readonly Result[][],
    /** Records a batch's results; resolves once they are committed. */
    private readonly onStep: (index: number, results: Result[]) => Promise<void>,
    /** Index of the first batch the agent yields: 0, or where a resumed agent's own checkpoint goes on. */
    first = 0,
  ) {
    this.recorded = [...recorded];
    this.index = first;
  }

  async execute(batch: CommandBatch, signal: AbortSignal): Promise<Result[]> {
    const i = this.index++;
    const recorded = this.recorded[i];
    if (recorded) {
      this.recorded[i] = undefined;
      return recorded;
    }
    const results = await this.inner.execute(batch, signal);
    // The agent sees the results (and sends its next batch) only once they are committed: a crash can then cost
    // at most the batch in flight, never one whose results were already answered. They are not kept here.
    await this.onStep(i, results);
    return results;
  }
}
