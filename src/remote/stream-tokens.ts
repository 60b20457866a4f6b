/**
 * Stream tokens: the `token_value` a typed session's start answer carries (as SSM's StartSession does). A token is
 * `<id>.<secret>`: the id finds the entry, the secret is compared in constant time (as SHA-256 digests), and the
 * entry names the one session it opens. Tokens are single-use (redeeming removes the entry, whatever the outcome)
 * and expire after `ttlMs`. Entries are bounded: a session holds at most MAX_PER_SESSION, and expired ones are
 * swept as new ones are issued.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Unused tokens one session may hold; issuing more drops its oldest. */
export const MAX_TOKENS_PER_SESSION = 8;

interface Entry {
  readonly sessionId: string;
  readonly digest: Buffer;
  readonly expiresAt: number;
}

export class StreamTokens {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /** A new token for `sessionId`. */
  issue(sessionId: string): { token: string; expiresAt: string } {
    this.sweep();
    const mine = [...this.entries].filter(([, e]) => e.sessionId === sessionId);
    for (const [id] of mine.slice(0, Math.max(0, mine.length - MAX_TOKENS_PER_SESSION + 1)))
      this.entries.delete(id);
    const id = randomBytes(9).toString('base64url');
    const secret = randomBytes(32).toString('base64url');
    const expiresAt = this.clock() + this.ttlMs;
    this.entries.set(id, { sessionId, digest: digest(secret), expiresAt });
    return { token: `${id}.${secret}`, expiresAt: new Date(expiresAt).toISOString() };
  }

  /** True when `token` is a live token of `sessionId`; it is used up either way. */
  redeem(sessionId: string, token: unknown): boolean {
    if (typeof token !== 'string' || token.length > 256) return false;
    const dot = token.indexOf('.');
    if (dot <= 0) return false;
    const id = token.slice(0, dot);
    const entry = this.entries.get(id);
    if (!entry) return false;
    this.entries.delete(id);
    const secretOk = timingSafeEqual(digest(token.slice(dot + 1)), entry.digest);
    return secretOk && entry.sessionId === sessionId && entry.expiresAt > this.clock();
  }

  /** Drops every token of a session (it ended). */
  revoke(sessionId: string): void {
    for (const [id, e] of this.entries) if (e.sessionId === sessionId) this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }

  private sweep(): void {
    const now = this.clock();
    for (const [id, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(id);
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
