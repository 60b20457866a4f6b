import { describe, expect, it } from 'vitest';
import { MAX_TOKENS_PER_SESSION, StreamTokens } from '../../src/remote/stream-tokens.js';

describe('stream tokens', () => {
  it('opens its own session once', () => {
    const t = new StreamTokens(60_000);
    const { token } = t.issue('s1');
    expect(t.redeem('s1', token)).toBe(true);
    expect(t.redeem('s1', token)).toBe(false);
  });

  it('never opens another session, and is used up by the attempt', () => {
    const t = new StreamTokens(60_000);
    const { token } = t.issue('s1');
    t.issue('s2');
    expect(t.redeem('s2', token)).toBe(false);
    expect(t.redeem('s1', token)).toBe(false);
  });

  it('expires', () => {
    let now = 1_000;
    const t = new StreamTokens(500, () => now);
    const { token, expiresAt } = t.issue('s1');
    expect(expiresAt).toBe(new Date(1_500).toISOString());
    now = 1_500;
    expect(t.redeem('s1', token)).toBe(false);
  });

  it('refuses a wrong secret for a real id, garbage, and non-strings', () => {
    const t = new StreamTokens(60_000);
    const { token } = t.issue('s1');
    const [id] = token.split('.');
    expect(t.redeem('s1', `${id}.wrong-secret`)).toBe(false);
    expect(t.redeem('s1', token)).toBe(false); // the failed attempt used it up
    expect(t.redeem('s1', 'no-dot')).toBe(false);
    expect(t.redeem('s1', 42)).toBe(false);
    expect(t.redeem('s1', 'x'.repeat(1000))).toBe(false);
  });

  it('keeps at most MAX_TOKENS_PER_SESSION per session, and revoke drops them all', () => {
    const t = new StreamTokens(60_000);
    const first = t.issue('s1').token;
    for (let i = 0; i < MAX_TOKENS_PER_SESSION; i++) t.issue('s1');
    expect(t.size).toBe(MAX_TOKENS_PER_SESSION);
    expect(t.redeem('s1', first)).toBe(false);
    t.issue('s2');
    t.revoke('s1');
    expect(t.size).toBe(1);
  });
});
