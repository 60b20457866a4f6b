/**
 * Explicit state machines: a transition table and one guarded way to move through it.
 * Sessions, connections and channel endpoints all declare their states this way: the table is the whole truth,
 * and a change it does not list is a programming error (`IllegalTransitionError`).
 */

/** Every state and the states it may move to. A state with no way out is terminal. */
export type TransitionTable<S extends string> = Readonly<Record<S, readonly S[]>>;

/** Thrown when code asks for a transition its table does not allow. */
export class IllegalTransitionError<S extends string = string> extends Error {
  override readonly name = 'IllegalTransitionError';
  constructor(
    readonly from: S,
    readonly to: S,
    what = 'session',
  ) {
    super(`Illegal ${what} transition ${from} → ${to}`);
  }
}

export function isTerminalIn<S extends string>(table: TransitionTable<S>, state: S): boolean {
  return table[state].length === 0;
}

/** A current state, guarded by a table. `what` names the machine in error texts. */
export class Fsm<S extends string> {
  private current: S;

  constructor(
    private readonly table: TransitionTable<S>,
    initial: S,
    private readonly what: string,
  ) {
    this.current = initial;
  }

  get state(): S {
    return this.current;
  }

  get terminal(): boolean {
    return isTerminalIn(this.table, this.current);
  }

  can(to: S): boolean {
    return this.table[this.current].includes(to);
  }

  /** Moves to `to`, or throws IllegalTransitionError. Returns the state left. */
  go(to: S): S {
    if (!this.can(to)) throw new IllegalTransitionError<S>(this.current, to, this.what);
    const from = this.current;
    this.current = to;
    return from;
  }
}
