/**
 * An insertion-ordered map for keys that come and go one at a time: a session's in-flight command batch (AIP has
 * one outstanding `command` per session) is added and removed once per round trip.
 *
 * A `Map` does that badly on V8: a `delete` that leaves it under half full shrinks it, and shrinking is a runtime
 * call that allocates a new table. A map that goes 0 → 1 → 0 entries every round trip allocates two tables per trip
 * (about 150 B each), and the table alive at a scavenge is copied by it. This map holds one entry in two fields, and
 * makes a `Map` only while it holds two or more; once empty again it drops the `Map` rather than shrink it.
 *
 * Iteration (`entries`, `values`) is over a snapshot, so the caller may delete while it walks.
 */
export class SlotMap<K, V> {
  private key: K | undefined = undefined;
  private value: V | undefined = undefined;
  private full = false;
  private map: Map<K, V> | null = null;

  get size(): number {
    return this.map ? this.map.size : this.full ? 1 : 0;
  }

  get(key: K): V | undefined {
    if (this.map) return this.map.get(key);
    return this.full && this.key === key ? this.value : undefined;
  }

  has(key: K): boolean {
    if (this.map) return this.map.has(key);
    return this.full && this.key === key;
  }

  set(key: K, value: V): this {
    if (this.map) {
      this.map.set(key, value);
    } else if (!this.full || this.key === key) {
      this.key = key;
      this.value = value;
      this.full = true;
    } else {
      this.map = new Map<K, V>([
        [this.key as K, this.value as V],
        [key, value],
      ]);
      this.clearSlot();
    }
    return this;
  }

  delete(key: K): boolean {
    if (this.map) {
      const had = this.map.delete(key);
      if (this.map.size === 0) this.map = null;
      return had;
    }
    if (!this.full || this.key !== key) return false;
    this.clearSlot();
    return true;
  }

  clear(): void {
    this.map = null;
    this.clearSlot();
  }

  /** The entries in insertion order, as a snapshot. */
  entries(): [K, V][] {
    if (this.map) return [...this.map];
    return this.full ? [[this.key as K, this.value as V]] : [];
  }

  /** The values in insertion order, as a snapshot. */
  values(): V[] {
    if (this.map) return [...this.map.values()];
    return this.full ? [this.value as V] : [];
  }

  private clearSlot(): void {
    this.key = undefined;
    this.value = undefined;
    this.full = false;
  }
}
