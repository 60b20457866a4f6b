import { describe, expect, it } from 'vitest';
import { decodeEvent, EAGER_EVENT_JSON_CHARS, encodeEvent } from '../../src/state/sql-schema.js';

const event = (data: Record<string, unknown>) =>
  encodeEvent({
    session_id: 's1',
    type: 'task.results',
    at: '2026-01-01T00:00:00.000Z',
    data: data,
  });

describe('decodeEvent', () => {
  it('parses a short event JSON at once, into a plain field', () => {
    const e = decodeEvent(7, event({ step: 1, results: [{ ok: true }] }));
    expect(Object.getOwnPropertyDescriptor(e, 'data')).toMatchObject({
      value: { step: 1, results: [{ ok: true }] },
    });
    expect(e).toEqual({
      id: 7,
      session_id: 's1',
      type: 'task.results',
      at: '2026-01-01T00:00:00.000Z',
      data: { step: 1, results: [{ ok: true }] },
    });
  });

  it('parses a long event JSON on first read, once, and still shows it as a plain enumerable field', () => {
    const text = 'x'.repeat(EAGER_EVENT_JSON_CHARS);
    const encoded = event({ text });
    expect(encoded.data.length).toBeGreaterThan(EAGER_EVENT_JSON_CHARS);
    const e = decodeEvent(8, encoded);
    const d = Object.getOwnPropertyDescriptor(e, 'data')!;
    expect(typeof d.get).toBe('function');
    expect(d.enumerable).toBe(true);
    expect(e.data).toBe(e.data);
    expect({ ...e }).toEqual({
      id: 8,
      session_id: 's1',
      type: 'task.results',
      at: encoded.at,
      data: { text },
    });
    expect(JSON.parse(JSON.stringify(e))).toEqual({ ...e });
  });

  it('gives each event its own copy of the data, at either length', () => {
    for (const data of [{ n: 1 }, { text: 'y'.repeat(EAGER_EVENT_JSON_CHARS) }]) {
      const encoded = event(data);
      const a = decodeEvent(1, encoded);
      const b = decodeEvent(1, encoded);
      expect(a.data).toEqual(data);
      expect(a.data).not.toBe(b.data);
      (a.data as Record<string, unknown>).changed = true;
      expect(b.data).toEqual(data);
    }
  });
});
