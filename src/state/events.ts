/**
 * The typed lifecycle event stream. Everything that happens to clients, sessions, commands, channels and
 * outbound buffers is announced here, and any number of subscribers can listen (metrics, the session store's
 * event log, SSE streams, a cluster bus). It replaces the single-slot `onSessionEnded` hook.
 *
 * Emitting is synchronous and cheap: with no subscriber for a type, `emit` is one map lookup, and hot-path
 * emitters check `wants(type)` before building an event at all. A subscriber that throws is logged by the bus's
 * error hook and never breaks the emitter or the other subscribers.
 */

export interface LifecycleEvents {
  'client.registered': {
    clientId: string;
    clientType: 'device' | 'constellation';
    platform: string;
    connId: string;
    /** The wire codec the connection negotiated (`aip-json`, `aip-msgpack`, …). */
    codec: string;
  };
  /** A registration refused: `reason` is the error catalogue code (DUPLICATE_CLIENT_ID, REGISTRATION_TIMEOUT, …). */
  'client.refused': { reason: string };
  'client.gone': {
    clientId: string;
    clientType: 'device' | 'constellation';
    reason: 'disconnected' | 'slow_consumer';
    code: number;
  };
  'session.created': {
    sessionId: string;
    taskName: string;
    ownerId: string;
    executorId: string;
    platform: string;
    mode: string;
  };
  'session.status': { sessionId: string; state: string; at: string; reason?: string };
  'session.ended': {
    sessionId: string;
    taskName: string;
    status: 'completed' | 'failed';
    error: string | null;
  };
  'command.sent': {
    sessionId: string;
    executorId: string;
    responseId: string;
    callIds: string[];
    tools: string[];
  };
  'results.received': { sessionId: string; executorId: string; responseId: string; statuses: string[] };
  'channel.opened': { sessionId: string; kind: string };
  'channel.closed': { sessionId: string; kind: string; bytes: number };
  'backpressure.on': { connId: string; bufferedBytes: number };
  'backpressure.off': { connId: string; bufferedBytes: number };
  /** An HTTP answer went out: `route` is the matched pattern (`/sessions/:id`), or null when no route matched. */
  'http.request': { method: string; route: string | null; status: number; ms: number };
  /** A session store write completed (or failed): `op` is the store method. */
  'store.write': { op: string; ms: number; ok: boolean };
}

export type LifecycleEventType = keyof LifecycleEvents;
export type LifecycleEvent = {
  [K in LifecycleEventType]: { type: K } & LifecycleEvents[K];
}[LifecycleEventType];
export type Listener<K extends LifecycleEventType> = (event: { type: K } & LifecycleEvents[K]) => void;

/** What emitters see: they never learn who listens. */
export interface EventSink {
  wants(type: LifecycleEventType): boolean;
  emit<K extends LifecycleEventType>(type: K, payload: LifecycleEvents[K]): void;
}

export class EventBus implements EventSink {
  private readonly listeners = new Map<LifecycleEventType, Listener<never>[]>();
  private any: readonly ((event: LifecycleEvent) => void)[] = [];

  constructor(
    private readonly onListenerError: (err: unknown, type: LifecycleEventType) => void = () => undefined,
  ) {}

  /** Subscribes to one type; returns the unsubscribe function. */
  on<K extends LifecycleEventType>(type: K, listener: Listener<K>): () => void {
    // Copy on write: `emit` walks the array it read, unchanged by (un)subscribes made while it runs.
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
    return () => this.remove(type, listener);
  }

  /** Subscribes to every type. */
  onAny(listener: (event: LifecycleEvent) => void): () => void {
    this.any = [...this.any, listener];
    return () => {
      const i = this.any.indexOf(listener);
      if (i >= 0) this.any = [...this.any.slice(0, i), ...this.any.slice(i + 1)];
    };
  }

  wants(type: LifecycleEventType): boolean {
    return this.any.length > 0 || (this.listeners.get(type)?.length ?? 0) > 0;
  }

  emit<K extends LifecycleEventType>(type: K, payload: LifecycleEvents[K]): void {
    const list = this.listeners.get(type) as Listener<K>[] | undefined;
    const any = this.any;
    if (!list && any.length === 0) return;
    const event = { type, ...payload } as { type: K } & LifecycleEvents[K];
    if (list)
      for (const l of list) {
        try {
          l(event);
        } catch (err) {
          this.onListenerError(err, type);
        }
      }
    for (const l of any) {
      try {
        l(event as LifecycleEvent);
      } catch (err) {
        this.onListenerError(err, type);
      }
    }
  }

  private remove(type: LifecycleEventType, listener: Listener<never>): void {
    const list = this.listeners.get(type);
    if (!list) return;
    const i = list.indexOf(listener);
    if (i < 0) return;
    const rest = [...list.slice(0, i), ...list.slice(i + 1)];
    if (rest.length === 0) this.listeners.delete(type);
    else this.listeners.set(type, rest);
  }
}
