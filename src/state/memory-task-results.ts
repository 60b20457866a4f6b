/**
 * In-process task results, bounded by entries and by bytes: a result's size is estimated from its content
 * (strings by length, other leaves by a small constant), so 20 screenshots of 10 MB cannot pin 200 MB.
 */
import { LRUCache } from 'lru-cache';
import type { TaskResultEntry, TaskResultStore } from './task-results.js';

export interface MemoryTaskResultOptions {
  /** Most entries kept. */
  readonly maxEntries: number;
  /** Most bytes kept, by the estimate below. An entry larger than this is not kept at all. */
  readonly maxBytes: number;
  /** Most dispatch-id aliases kept. */
  readonly maxAliases: number;
}

export class MemoryTaskResultStore implements TaskResultStore {
  private readonly results: LRUCache<string, TaskResultEntry>;
  private readonly aliases: LRUCache<string, string>;

  constructor(opts: MemoryTaskResultOptions) {
    this.results = new LRUCache<string, TaskResultEntry>({
      max: opts.maxEntries,
      maxSize: opts.maxBytes,
      sizeCalculation: (entry, key) => Math.max(1, key.length + approxBytes(entry)),
    });
    this.aliases = new LRUCache<string, string>({ max: opts.maxAliases });
  }

  set(taskName: string, entry: TaskResultEntry): Promise<void> {
    // lru-cache refuses an entry over maxSize; drop any older value so a stale one is never served instead.
    if (!this.results.set(taskName, entry).has(taskName)) this.results.delete(taskName);
    return Promise.resolve();
  }

  get(taskName: string): Promise<TaskResultEntry | undefined> {
    return Promise.resolve(this.results.get(taskName));
  }

  alias(alias: string, taskName: string): Promise<void> {
    this.aliases.set(alias, taskName);
    return Promise.resolve();
  }

  resolveAlias(alias: string): Promise<string | undefined> {
    return Promise.resolve(this.aliases.get(alias));
  }

  /** Bytes held, by the estimate. */
  get calculatedSize(): number {
    return this.results.calculatedSize;
  }

  get size(): number {
    return this.results.size;
  }
}

/** An estimate of a JSON-like value's memory: UTF-16 strings at 2 bytes a unit, 16 bytes per other node. */
export function approxBytes(value: unknown): number {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') total += 16 + v.length * 2;
    else if (v instanceof Uint8Array) total += 16 + v.byteLength;
    else if (Array.isArray(v)) {
      total += 16;
      for (const item of v as unknown[]) stack.push(item);
    } else if (v !== null && typeof v === 'object') {
      total += 16;
      for (const [k, item] of Object.entries(v)) {
        total += 16 + k.length * 2;
        stack.push(item);
      }
    } else total += 8;
  }
  return total;
}
