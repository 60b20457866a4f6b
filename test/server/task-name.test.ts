/** §14.2 test_task_name_traversal counterparts: the sanitiser (WebSocket path) and the safety check (HTTP path). */
import { describe, expect, it } from 'vitest';
import { isSafeTaskName, sanitizeTaskName } from '../../src/server/task-name.js';

describe('task_name sanitising (ufo-aip.md §9.3)', () => {
  it('passes safe names through', () => {
    expect(sanitizeTaskName('ok-name_1.2')).toBe('ok-name_1.2');
  });
  it('removes traversal and separators', () => {
    const s = sanitizeTaskName('../escape');
    expect(s).toBe('_escape');
    for (const bad of ['..', '/', '\\']) expect(s.includes(bad)).toBe(false);
    expect(sanitizeTaskName('a/b\\c')).toBe('a_b_c');
    expect(sanitizeTaskName('C:\\escape')).toBe('C__escape');
    expect(isSafeTaskName(sanitizeTaskName('..%2fescape'))).toBe(true);
    expect(sanitizeTaskName('galaxy/K/t1')).toBe('galaxy_K_t1');
  });
  it('falls back when nothing is left, or to a uuid', () => {
    expect(sanitizeTaskName('..', 'fb')).toBe('fb');
    expect(sanitizeTaskName('', 'fb')).toBe('fb');
    const id = sanitizeTaskName(null);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(isSafeTaskName(id)).toBe(true);
  });
  it('checks names on the HTTP path', () => {
    expect(isSafeTaskName('ok-name_1.2')).toBe(true);
    for (const bad of ['../escape', '.hidden', '', null, 'a/b', 'C:\\x', 'x'.repeat(257)])
      expect(isSafeTaskName(bad)).toBe(false);
  });
});
