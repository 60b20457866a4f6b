/** TaskTracker: every soak task by session id, from its request to its `task_end` (or its loss). */
import type { ServerMessage } from '../../protocol/index.js';
import { bucket, Counter } from './soak-counters.js';

export type TaskKind = 'plan' | 'hold' | 'churn';

interface Track {
  readonly sid: string;
  readonly kind: TaskKind;
  readonly requestedAt: number;
  acked: boolean;
  /** When the soak deliberately killed the task's device (a failure after it is expected). */
  killedAt: number | null;
  readonly done: (end: ServerMessage | null) => void;
}

export interface LostTask {
  sid: string;
  kind: TaskKind;
  acked: boolean;
  age_s: number;
}

export class TaskTracker {
  /** Tasks the server acknowledged, by kind. */
  readonly started = new Counter();
  readonly completed = new Counter();
  /** Failed after the soak killed the task's device on purpose (churn), by `kind: reason`. */
  readonly failedExpected = new Counter();
  /** Any other failure, by `kind: reason`. */
  readonly failedUnexpected = new Counter();
  /** Task requests answered with an error instead of an ACK, by `kind: reason`. */
  readonly refused = new Counter();
  /** task_end frames for sessions the tracker does not know (or already ended). */
  readonly strayEnds = new Counter();
  private readonly open = new Map<string, Track>();
  private lastEndAt = 0;

  /** Registers a task before its request is sent; resolves with its task_end (null when abandoned or refused). */
  request(sid: string, kind: TaskKind): Promise<ServerMessage | null> {
    return new Promise((done) =>
      this.open.set(sid, { sid, kind, requestedAt: Date.now(), acked: false, killedAt: null, done }),
    );
  }

  /** The request was answered with an error (no task started). */
  refusedWith(sid: string, reason: string): void {
    const t = this.open.get(sid);
    if (!t) return;
    this.open.delete(sid);
    this.refused.add(`${t.kind}: ${bucket(reason)}`);
    t.done(null);
  }

  killed(sid: string): void {
    const t = this.open.get(sid);
    if (t) t.killedAt = Date.now();
  }

  /** Every frame a controller receives goes through here (ACKs and task_end). */
  onFrame(msg: ServerMessage): void {
    const sid = msg.session_id;
    if (!sid) return;
    if (msg.type === 'heartbeat' && msg.status === 'ok') {
      const t = this.open.get(sid);
      if (t && !t.acked) {
        t.acked = true;
        this.started.add(t.kind);
      }
      return;
    }
    if (msg.type !== 'task_end') return;
    const t = this.open.get(sid);
    if (!t) {
      this.strayEnds.add(`task_end ${msg.status} for an unknown session`);
      return;
    }
    this.open.delete(sid);
    this.lastEndAt = Date.now();
    if (!t.acked) {
      // the ACK always precedes task_end on the wire; count it as started all the same
      t.acked = true;
      this.started.add(t.kind);
    }
    if (msg.status === 'completed') this.completed.add(t.kind);
    else {
      const reason = `${t.kind}: ${bucket(msg.error ?? `status ${msg.status}`)}`;
      if (t.killedAt !== null) this.failedExpected.add(reason);
      else this.failedUnexpected.add(reason);
    }
    t.done(msg);
  }

  /** Tasks still waiting for a task_end (acked) or for an ACK. */
  get pending(): number {
    return this.open.size;
  }

  get msSinceLastEnd(): number {
    return this.lastEndAt === 0 ? Number.POSITIVE_INFINITY : Date.now() - this.lastEndAt;
  }

  /** Gives up on every open task (their waiters resolve with null) and returns them. */
  abandon(): LostTask[] {
    const now = Date.now();
    const lost = [...this.open.values()].map((t) => ({
      sid: t.sid,
      kind: t.kind,
      acked: t.acked,
      age_s: Math.round((now - t.requestedAt) / 100) / 10,
    }));
    for (const t of this.open.values()) t.done(null);
    this.open.clear();
    return lost;
  }
}
