/**
 * The session state machine: created → running → completed | failed | cancelled.
 * A session that is cancelled before it starts goes created → cancelled.
 * Every change goes through `StateMachine.transition`, which refuses anything not in `TRANSITIONS`.
 */
import { Fsm, IllegalTransitionError, isTerminalIn, type TransitionTable } from '../lib/fsm.js';
import { SessionState } from './types.js';
import type { StatusChange } from './types.js';

export { IllegalTransitionError };

/** The legal transitions, and nothing else. Terminal states have no way out. */
export const TRANSITIONS: TransitionTable<SessionState> = {
  [SessionState.CREATED]: [SessionState.RUNNING, SessionState.CANCELLED],
  [SessionState.RUNNING]: [SessionState.COMPLETED, SessionState.FAILED, SessionState.CANCELLED],
  [SessionState.COMPLETED]: [],
  [SessionState.FAILED]: [],
  [SessionState.CANCELLED]: [],
};

export function isTerminal(state: SessionState): boolean {
  return isTerminalIn(TRANSITIONS, state);
}

export class StateMachine {
  private readonly fsm = new Fsm(TRANSITIONS, SessionState.CREATED, 'session');
  private readonly changes: StatusChange[];

  constructor(
    private readonly clock: () => Date = () => new Date(),
    /** Told of every change after it is made (a listener that throws does not undo it). */
    private readonly onChange?: (change: StatusChange) => void,
  ) {
    this.changes = [{ state: SessionState.CREATED, at: this.clock().toISOString() }];
  }

  get state(): SessionState {
    return this.fsm.state;
  }

  /** Every state the session has been in, oldest first, with ISO timestamps. */
  get history(): readonly StatusChange[] {
    return this.changes;
  }

  get terminal(): boolean {
    return this.fsm.terminal;
  }

  canTransition(to: SessionState): boolean {
    return this.fsm.can(to);
  }

  /** The one guarded way to change state. Throws `IllegalTransitionError` for a transition not in the table. */
  transition(to: SessionState, reason?: string): StatusChange {
    this.fsm.go(to);
    const at = this.clock().toISOString();
    const change: StatusChange = reason === undefined ? { state: to, at } : { state: to, at, reason };
    this.changes.push(change);
    this.onChange?.(change);
    return change;
  }
}
