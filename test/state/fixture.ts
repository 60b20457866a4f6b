/** How a conformance suite gets a fresh implementation for each test, and frees it. */
import { afterEach, beforeEach } from 'vitest';

export interface Fixture<T> {
  make(): Promise<T> | T;
  /** Frees what `make` created (connections, databases). */
  dispose?(impl: T): Promise<void> | void;
}

export function withImpl<T>(fixture: Fixture<T>): () => T {
  let impl: T | null = null;
  beforeEach(async () => {
    impl = await fixture.make();
  });
  afterEach(async () => {
    if (impl !== null) await fixture.dispose?.(impl);
    impl = null;
  });
  return () => impl!;
}
