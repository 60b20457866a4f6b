import { describe, expect, it } from 'vitest';
import {
  IllegalTransitionError,
  StateMachine,
  TRANSITIONS,
  isTerminal,
} from '../../src/session/state-machine.js';
import { SessionState } from '../../src/session/types.js';

const ALL = Object.values(SessionState);

describe('StateMachine', () => {
  it('starts in created with one history entry carrying an ISO timestamp', () => {
    const m = new StateMachine(() => new Date('2026-01-02T03:04:05.000Z'));
    expect(m.state).toBe('created');
    expect(m.history).toEqual([{ state: 'created', at: '2026-01-02T03:04:05.000Z' }]);
  });

  it('records every transition with its reason, in order', () => {
    let t = 0;
    const m = new StateMachine(() => new Date(Date.UTC(2026, 0, 1, 0, 0, t++)));
    m.transition('running');
    m.transition('failed', 'boom');
    expect(m.history).toEqual([
      { state: 'created', at: '2026-01-01T00:00:00.000Z' },
      { state: 'running', at: '2026-01-01T00:00:01.000Z' },
      { state: 'failed', at: '2026-01-01T00:00:02.000Z', reason: 'boom' },
    ]);
    expect(m.terminal).toBe(true);
  });

  it('allows exactly the transitions in the table and throws for every other pair', () => {
    const allowed: string[] = [];
    for (const from of ALL) {
      for (const to of ALL) {
        // Drive a fresh machine into `from` along a legal path.
        const m = new StateMachine();
        if (from !== 'created') {
          if (from === 'cancelled') m.transition('cancelled');
          else {
            m.transition('running');
            if (from !== 'running') m.transition(from);
          }
        }
        try {
          m.transition(to);
          allowed.push(`${from}->${to}`);
          expect(m.state).toBe(to);
        } catch (e) {
          expect(e).toBeInstanceOf(IllegalTransitionError);
          expect((e as IllegalTransitionError).from).toBe(from);
          expect(m.state).toBe(from); // unchanged
        }
      }
    }
    expect(allowed.sort()).toEqual(
      [
        'created->running',
        'created->cancelled',
        'running->completed',
        'running->failed',
        'running->cancelled',
      ].sort(),
    );
  });

  it('marks exactly completed, failed and cancelled as terminal', () => {
    expect(ALL.filter(isTerminal).sort()).toEqual(['cancelled', 'completed', 'failed']);
    expect(TRANSITIONS.completed).toEqual([]);
  });
});
