/**
 * The session state machine: created → running → completed | failed | cancelled.
 * A session that is cancelled before it starts goes created → cancelled.
 * Every change goes through `StateMachine.transition`, which refuses anything not in `TRANSITIONS`.
 */
import { SessionState } from './types.js';
import type { StatusChange } from './types.js';

/** The legal transitions, and nothing else. Terminal states have no way out. */
export const TRANSITIONS: Readonly<Record<SessionState, readonly SessionState[]>> = {
  [SessionState.CREATED]: [SessionState.RUNNING, SessionState.CANCELLED],
  [SessionState.RUNNING]: [SessionState.COMPLETED, SessionState.FAILED, SessionState.CANCELLED],
  [SessionState.COMPLETED]: [],
  [SessionState.FAILED]: [],
  [SessionState.CANCELLED]: [],
};

export function isTerminal(state: SessionState): boolean {
  return TRANSITIONS[state].length === 0;
}

/** Thrown when code asks for a transition the table does not allow (a programming error). */
export class IllegalTransitionError extends Error {
  override readonly name = 'IllegalTransitionError';
  constructor(
    readonly from: SessionState,
    readonly to: SessionState,
  ) {
    super(`Illegal session transition ${from} → ${to}`);
  }
}

export class StateMachine {
  private current: SessionState = SessionState.CREATED;
  private readonly changes: StatusChange[];

  constructor(private readonly clock: () => Date = () => new Date()) {
    this.changes = [{ state: SessionState.CREATED, at: this.clock().toISOString() }];
  }

  get state(): SessionState {
    return this.current;
  }

  /** Every state the session has been in, oldest first, with ISO timestamps. */
  get history(): readonly StatusChange[] {
    return this.changes;
  }

  get terminal(): boolean {
    return isTerminal(this.current);
  }

  canTransition(to: SessionState): boolean {
    return TRANSITIONS[this.current].includes(to);
  }

  /** The one guarded way to change state. Throws `IllegalTransitionError` for a transition not in the table. */
  transition(to: SessionState, reason?: string): StatusChange {
    if (!this.canTransition(to)) throw new IllegalTransitionError(this.current, to);
    const change: StatusChange =
      reason === undefined ? { state: to, at: this.clock().toISOString() } : { state: to, at: this.clock().toISOString(), reason };
    this.current = to;
    this.changes.push(change);
    return change;
  }
}
