/**
 * ufo-aip.md §3.6: the pydantic v2 parsing rules, one accepted and one rejected case each.
 * Rejections are AipErrors with the catalogue code, and validation texts name the offending field.
 * Cases that are JSON objects also run through the msgpack codec, which must agree.
 */
import { describe, expect, it } from 'vitest';
import {
  AipError,
  Errors,
  decodeClientMessage,
  decodeServerMessage,
  jsonCodec,
  msgpackCodec,
  packValue,
  type ClientMessage,
  type Decoded,
  type ServerMessage,
} from '../../protocol/index.js';

type Dir = 'client' | 'server';

function decodeBoth(dir: Dir, raw: string): Decoded<ClientMessage | ServerMessage>[] {
  const dec = dir === 'client' ? decodeClientMessage : decodeServerMessage;
  const out: Decoded<ClientMessage | ServerMessage>[] = [dec(jsonCodec, raw, false)];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return out;
  }
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
    out.push(dec(msgpackCodec, packValue(parsed), true));
  return out;
}

function accept(dir: Dir, raw: string): Record<string, unknown> {
  const results = decodeBoth(dir, raw);
  for (const r of results) {
    if (!r.ok) throw new Error(`expected accept, got: ${r.error.message}`);
  }
  const first = results[0] as { ok: true; value: Record<string, unknown> };
  for (const r of results.slice(1)) expect(r.ok && r.value).toEqual(first.value);
  return first.value;
}

function reject(dir: Dir, raw: string, code: number, field?: string): AipError {
  const results = decodeBoth(dir, raw);
  let first: AipError | undefined;
  for (const r of results) {
    expect(r.ok).toBe(false);
    if (r.ok) continue;
    expect(r.error).toBeInstanceOf(AipError);
    expect(r.error.code).toBe(code);
    if (field !== undefined) {
      expect(r.error.message.split('\n')).toContain(field);
      expect((r.error.path ?? []).map(String).join('.')).toBe(field);
    }
    first ??= r.error;
  }
  return first!;
}

const V = Errors.VALIDATION.code;

describe('§3.6 unknown keys are ignored', () => {
  it('accepts and strips unknown keys in ClientMessage, ServerMessage, Command and Result', () => {
    const c = accept(
      'client',
      '{"type":"heartbeat","status":"ok","foo":1,"action_results":[{"status":"none","extra":true}]}',
    );
    expect(c).not.toHaveProperty('foo');
    expect((c.action_results as object[])[0]).not.toHaveProperty('extra');
    const s = accept(
      'server',
      '{"type":"command","status":"continue","message":"hi","actions":[{"tool_name":"t","tool_type":"action","zzz":1}]}',
    );
    expect(s).not.toHaveProperty('message');
    expect((s.actions as object[])[0]).toEqual({
      tool_name: 't',
      parameters: null,
      tool_type: 'action',
      call_id: null,
    });
  });
  it('an unknown key does not stand in for a required one (Type is not type)', () => {
    reject('client', '{"Type":"heartbeat","status":"ok"}', V, 'type');
  });
});

describe('§3.6 missing status or type', () => {
  it('accepts when both are present', () => {
    expect(accept('server', '{"type":"heartbeat","status":"ok"}').status).toBe('ok');
  });
  it('rejects a missing status', () => {
    const e = reject('client', '{"type":"heartbeat"}', V, 'status');
    expect(e.message).toMatch(/^1 validation error for ClientMessage/);
    reject('server', '{"type":"heartbeat"}', V, 'status');
  });
  it('rejects a missing type', () => {
    reject('client', '{"status":"ok"}', V, 'type');
    const e = reject('server', '{"status":"ok"}', V, 'type');
    expect(e.message).toMatch(/^1 validation error for ServerMessage/);
  });
});

describe('§3.6 type must be a lowercase enum value', () => {
  it('accepts lowercase', () => {
    expect(accept('client', '{"type":"device_info_request","status":"ok"}').type).toBe('device_info_request');
  });
  it('rejects HEARTBEAT, Heartbeat and values outside the enum', () => {
    reject('client', '{"type":"HEARTBEAT","status":"ok"}', V, 'type');
    reject('client', '{"type":"Heartbeat","status":"ok"}', V, 'type');
    reject('server', '{"type":"command_results","status":"ok"}', V, 'type');
    reject('client', '{"type":"heartbeat","status":"cancelled"}', V, 'status');
  });
});

describe('§3.6 client_type', () => {
  it('absent becomes device; constellation is kept', () => {
    expect(accept('client', '{"type":"register","status":"ok","client_id":"a"}').client_type).toBe('device');
    expect(
      accept('client', '{"type":"register","status":"ok","client_type":"constellation"}').client_type,
    ).toBe('constellation');
  });
  it('explicit null is rejected', () => {
    reject('client', '{"type":"register","status":"ok","client_type":null}', V, 'client_type');
  });
});

describe('§3.6 no coercion of numbers to strings', () => {
  it('accepts a numeric-looking string', () => {
    expect(accept('client', '{"type":"register","status":"ok","client_id":"123"}').client_id).toBe('123');
  });
  it('rejects a number or a boolean where a string is expected', () => {
    reject('client', '{"type":"register","status":"ok","client_id":123}', V, 'client_id');
    reject('client', '{"type":"task","status":"continue","request":true}', V, 'request');
    reject('server', '{"type":"task_end","status":"failed","error":404}', V, 'error');
  });
});

describe('§3.6 metadata must be an object', () => {
  it('accepts an object or null', () => {
    expect(
      accept('client', '{"type":"heartbeat","status":"ok","metadata":{"device_id":"d"}}').metadata,
    ).toEqual({ device_id: 'd' });
    expect(accept('client', '{"type":"heartbeat","status":"ok","metadata":null}').metadata).toBeNull();
  });
  it('rejects a string, an array and a number', () => {
    reject('client', '{"type":"heartbeat","status":"ok","metadata":"windows"}', V, 'metadata');
    reject('client', '{"type":"heartbeat","status":"ok","metadata":[]}', V, 'metadata');
    reject('client', '{"type":"heartbeat","status":"ok","metadata":7}', V, 'metadata');
  });
});

describe('§3.6 action_results[i] needs status', () => {
  it('accepts Results with a status (and an empty list)', () => {
    expect(
      accept(
        'client',
        '{"type":"command_results","status":"continue","action_results":[{"status":"success"}]}',
      ).action_results,
    ).toEqual([{ status: 'success', error: null, result: null, namespace: null, call_id: null }]);
    expect(
      accept('client', '{"type":"command_results","status":"continue","action_results":[]}').action_results,
    ).toEqual([]);
  });
  it('rejects a Result without status, naming its index', () => {
    reject(
      'client',
      '{"type":"command_results","status":"continue","action_results":[{"status":"success"},{"result":1}]}',
      V,
      'action_results.1.status',
    );
  });
});

describe('§3.6 the frame must be a JSON object', () => {
  it('accepts an object', () => {
    expect(accept('client', ' {"type":"heartbeat","status":"ok"} ').type).toBe('heartbeat');
  });
  it('rejects non-JSON text', () => {
    reject('client', 'hello', Errors.INVALID_JSON.code);
    reject('client', '{"type":"heartbeat",', Errors.INVALID_JSON.code);
    reject('server', '', Errors.INVALID_JSON.code);
  });
  it('rejects arrays and scalars', () => {
    expect(
      reject('client', '[{"type":"heartbeat","status":"ok"}]', Errors.NOT_AN_OBJECT.code).message,
    ).toContain('an array');
    reject('server', '"heartbeat"', Errors.NOT_AN_OBJECT.code);
    reject('client', 'null', Errors.NOT_AN_OBJECT.code);
    reject('client', '42', Errors.NOT_AN_OBJECT.code);
  });
});

describe('§3.6 duplicate keys: the last one wins', () => {
  it('accepts when the last value is valid', () => {
    expect(
      decodeClientMessage(jsonCodec, '{"type":"task","type":"heartbeat","status":"ok"}', false),
    ).toMatchObject({
      ok: true,
      value: { type: 'heartbeat' },
    });
  });
  it('rejects when the last value is invalid even if an earlier one was valid', () => {
    const r = decodeClientMessage(jsonCodec, '{"type":"heartbeat","status":"ok","status":"bogus"}', false);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe(V);
      expect(r.error.message.split('\n')).toContain('status');
    }
  });
});
