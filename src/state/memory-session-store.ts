/** The in-process session store: a Map of frozen records. */
import {
  matchesFilter,
  type SessionFilter,
  type SessionRecord,
  type SessionStore,
  type StatusEntry,
} from './session-store.js';

export class MemorySessionStore implements SessionStore {
  private readonly records = new Map<string, SessionRecord>();

  create(record: SessionRecord): Promise<boolean> {
    if (this.records.has(record.id)) return Promise.resolve(false);
    this.records.set(record.id, freeze(record));
    return Promise.resolve(true);
  }

  get(id: string): Promise<SessionRecord | null> {
    return Promise.resolve(this.records.get(id) ?? null);
  }

  appendStatus(id: string, entry: StatusEntry): Promise<SessionRecord | null> {
    const rec = this.records.get(id);
    if (!rec) return Promise.resolve(null);
    const next = freeze({
      ...rec,
      state: entry.state,
      updatedAt: entry.at,
      history: [...rec.history, entry],
    });
    this.records.set(id, next);
    return Promise.resolve(next);
  }

  list(filter: SessionFilter = {}): Promise<SessionRecord[]> {
    const out: SessionRecord[] = [];
    for (const rec of this.records.values()) {
      if (filter.limit !== undefined && out.length >= filter.limit) break;
      if (matchesFilter(rec, filter)) out.push(rec);
    }
    return Promise.resolve(out);
  }

  delete(id: string): Promise<boolean> {
    return Promise.resolve(this.records.delete(id));
  }
}

/** A deep-frozen copy: callers share it safely, and nobody can change the stored value through it. */
function freeze(rec: SessionRecord): SessionRecord {
  const history = rec.history.map((h) => Object.freeze({ ...h }));
  return Object.freeze({ ...rec, history: Object.freeze(history) });
}
