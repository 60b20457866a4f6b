import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { aipError, AipError, CloseCode, Errors, type ErrorName } from '../../protocol/index.js';
import { renderErrorDocs } from '../../protocol/error-docs.js';

describe('error catalogue', () => {
  it('gives every error a unique code in its range', () => {
    const codes = Object.values(Errors).map((e) => e.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect(c >= 1000 && c < 8000).toBe(true);
  });

  it('keeps close codes in 1000–1011 or the application range 4000–4999, all distinct', () => {
    const codes = Object.values(CloseCode);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect((c >= 1000 && c <= 1011) || (c >= 4000 && c <= 4999)).toBe(true);
  });

  it('builds typed errors whose kind, code and text come from the catalogue', () => {
    const e = aipError('SESSION_OWNED', { sid: 's1' });
    expect(e).toBeInstanceOf(AipError);
    expect(e).toBeInstanceOf(Error);
    expect(e).toMatchObject({
      kind: 'SESSION_OWNED',
      code: Errors.SESSION_OWNED.code,
      message: "session_id 's1' is owned by another client",
    });
    const names = Object.keys(Errors) as ErrorName[];
    expect(names).toContain('DEVICE_DISCONNECTED');
  });

  it('docs/errors.md lists every code (run `npm run docs:errors` if this fails)', () => {
    const committed = readFileSync(fileURLToPath(new URL('../../docs/errors.md', import.meta.url)), 'utf8');
    expect(committed, 'docs/errors.md is stale: run `npm run docs:errors`').toBe(renderErrorDocs());
    for (const [name, spec] of Object.entries(Errors))
      expect(committed).toContain(`| ${spec.code} | ${name} |`);
  });
});
