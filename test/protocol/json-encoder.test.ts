/**
 * The direct JSON encoder of server messages (protocol/codec/json.ts) must stay byte-identical to the generic
 * form, JSON.stringify(serverWire(msg)), whose key order comes from the schema. This pins it, including after
 * a schema change.
 */
import { describe, expect, it } from 'vitest';
import { SERVER_MESSAGE_KEYS, serverWire, type ServerMessageInput } from '../../protocol/index.js';
import { encodeServerJson } from '../../protocol/codec/json.js';

let seed = 42;
const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const STRINGS = [
  '',
  'plain',
  'ünïcødé ✓',
  'quote " and \\ backslash',
  'ctl \u0001\u001f\n\t',
  'lone \ud800 surrogate',
  '</script>',
];
function value(depth = 0): unknown {
  const k = Math.floor(rand() * (depth > 2 ? 5 : 8));
  switch (k) {
    case 0:
      return null;
    case 1:
      return pick(STRINGS);
    case 2:
      return pick([0, -0, 1.5, 1e21, 32, NaN, -7]);
    case 3:
      return rand() < 0.5;
    case 4:
      return undefined;
    case 5:
      return Array.from({ length: Math.floor(rand() * 3) }, () => value(depth + 1));
    default:
      return Object.fromEntries(
        Array.from({ length: Math.floor(rand() * 3) }, (_, i) => [
          `${pick(['k', '1', 'é'])}${i}`,
          value(depth + 1),
        ]),
      );
  }
}
const maybe = (v: unknown): unknown => (rand() < 0.3 ? undefined : v);

describe('direct JSON encoder of server messages', () => {
  it('matches JSON.stringify(serverWire(msg)) byte for byte on 2,000 random messages', () => {
    for (let i = 0; i < 2000; i++) {
      const msg = {
        type: pick(['command', 'task_end', 'heartbeat', 'error']),
        status: pick(['continue', 'completed', 'failed', 'ok']),
        user_request: maybe(pick(STRINGS)),
        agent_name: maybe(pick(STRINGS)),
        actions: maybe(
          Array.from({ length: Math.floor(rand() * 3) }, () => ({
            tool_name: pick(STRINGS),
            parameters: maybe(value(1)),
            tool_type: 'action',
            call_id: maybe('c'),
          })),
        ),
        messages: maybe([pick(STRINGS)]),
        error: maybe(pick(STRINGS)),
        session_id: maybe('s'),
        timestamp: maybe('2025-11-04T10:30:00.123456+00:00'),
        response_id: maybe('r'),
        result: maybe(value()),
      } as ServerMessageInput;
      expect(encodeServerJson(msg)).toBe(JSON.stringify(serverWire(msg)));
    }
  });

  it('emits exactly the schema keys, in order', () => {
    const text = encodeServerJson({ type: 'heartbeat', status: 'ok' });
    expect(Object.keys(JSON.parse(text) as object)).toEqual(SERVER_MESSAGE_KEYS);
  });
});
