/**
 * Every wire example of ufo-aip.md §4–§7 decodes from its raw text to the expected typed value, and
 * re-encodes to UFO's full form (every key, declaration order, null when absent).
 */
import { describe, expect, it } from 'vitest';
import {
  CLIENT_MESSAGE_KEYS,
  COMMAND_KEYS,
  RESULT_KEYS,
  SERVER_MESSAGE_KEYS,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
  jsonCodec,
  type ClientMessage,
  type ServerMessage,
} from '../../protocol/index.js';
import * as F from '../fixtures/aip-frames.js';

function server(raw: string | Uint8Array, isBinary = false): ServerMessage {
  const r = decodeServerMessage(jsonCodec, raw, isBinary);
  if (!r.ok) throw new Error(`expected a valid ServerMessage: ${r.error.message}`);
  return r.value;
}
function client(raw: string | Uint8Array, isBinary = false): ClientMessage {
  const r = decodeClientMessage(jsonCodec, raw, isBinary);
  if (!r.ok) throw new Error(`expected a valid ClientMessage: ${r.error.message}`);
  return r.value;
}

/** The full form of `raw`: all keys of `keys`, in order, taken from raw or null. */
function fullForm(
  raw: string,
  keys: readonly string[],
  nested?: { key: string; keys: readonly string[] },
): string {
  const src = JSON.parse(raw) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = k in src ? src[k] : null;
  if (nested && Array.isArray(out[nested.key])) {
    out[nested.key] = (out[nested.key] as Record<string, unknown>[]).map((item) => {
      const o: Record<string, unknown> = {};
      for (const k of nested.keys) o[k] = k in item ? item[k] : null;
      return o;
    });
  }
  return JSON.stringify(out);
}

describe('server wire examples round-trip (§4–§7)', () => {
  for (const f of F.SERVER_FRAMES) {
    it(`${f.section} ${f.name}`, () => {
      const msg = server(f.raw);
      const again = encodeServerMessage(jsonCodec, msg);
      expect(again).toBe(fullForm(f.raw, SERVER_MESSAGE_KEYS, { key: 'actions', keys: COMMAND_KEYS }));
      // Re-decoding the full form gives the same typed value.
      expect(server(again as string)).toEqual(msg);
      // Also as a binary frame of UTF-8 JSON.
      expect(server(new TextEncoder().encode(f.raw), true)).toEqual(msg);
    });
  }

  it('§4 full registration confirmation re-encodes byte for byte', () => {
    expect(encodeServerMessage(jsonCodec, server(F.S_REGISTRATION_CONFIRMATION_FULL))).toBe(
      F.S_REGISTRATION_CONFIRMATION_FULL,
    );
  });

  it('§4 registration confirmation typed values', () => {
    const m = server(F.S_REGISTRATION_CONFIRMATION_FULL);
    expect(m.type).toBe('heartbeat');
    expect(m.status).toBe('ok');
    expect(m.session_id).toBeNull();
    expect(m.timestamp).toBe(F.TS);
    expect(m.response_id).toBe(F.UUID_A);
    expect(m.result).toBeNull();
    expect(m.actions).toBeNull();
  });

  it('§5.4 registration ok decodes to the same value as the full form', () => {
    expect(server(F.S_REGISTRATION_OK)).toEqual(server(F.S_REGISTRATION_CONFIRMATION_FULL));
  });

  it('§7.1 command: actions are full Command objects', () => {
    const m = server(F.S_COMMAND);
    expect(m.type).toBe('command');
    expect(m.status).toBe('continue');
    expect(m.agent_name).toBe('HostAgent');
    expect(m.session_id).toBe(F.SID);
    expect(m.task_name).toBe('notepad_hello');
    expect(m.response_id).toBe('r-1');
    expect(m.actions).toEqual([
      {
        tool_name: 'capture_desktop_screenshot',
        parameters: { all_screens: true },
        tool_type: 'data_collection',
        call_id: F.UUID_C,
      },
    ]);
  });

  it('§6.3 task_end completed keeps the result list verbatim', () => {
    const m = server(F.S_TASK_END_COMPLETED);
    expect(m.type).toBe('task_end');
    expect(m.status).toBe('completed');
    expect(m.error).toBeNull();
    expect(m.result).toEqual((JSON.parse(F.S_TASK_END_COMPLETED) as { result: unknown }).result);
    expect(Array.isArray(m.result) && m.result.length).toBe(2);
  });

  it('§8.4 task_end failed carries error and a dict result', () => {
    const m = server(F.S_TASK_END_FAILED);
    expect(m.status).toBe('failed');
    expect(m.error).toBe('Task was cancelled because target device disconnected');
    expect(m.result).toEqual({ failure: 'session ended with an error' });
    expect(m.session_id).toBe('my_constellation@t1');
  });

  it('§6.5 HTTP-dispatched task', () => {
    const m = server(F.S_TASK_DISPATCH);
    expect([m.type, m.status, m.user_request, m.task_name, m.session_id]).toEqual([
      'task',
      'continue',
      'Open Notepad',
      'notepad_task',
      F.SID,
    ]);
  });

  it('§6.6 device_info_response echoes request_id as response_id and holds the system info', () => {
    const m = server(F.S_DEVICE_INFO_RESPONSE);
    expect(m.type).toBe('device_info_response');
    expect(m.response_id).toBe('device_info_device_win_01_1762252200.12');
    expect(m.result).toMatchObject({
      device_id: 'device_win_01',
      cpu_count: 16,
      memory_total_gb: 31.73,
      custom_metadata: {},
    });
    const missing = server(F.S_DEVICE_INFO_MISSING);
    expect(missing.status).toBe('ok');
    expect(missing.result).toEqual({ error: 'Device ghost not found or no system info available' });
  });

  it('§6.7 error frames keep their text', () => {
    for (const t of F.S_ERROR_TEXTS) {
      const m = server(F.serverErrorFrame(t));
      expect([m.type, m.status, m.error]).toEqual(['error', 'error', t]);
    }
  });
});

describe('client wire examples round-trip (§4–§7)', () => {
  for (const f of F.CLIENT_FRAMES) {
    it(`${f.section} ${f.name}`, () => {
      const msg = client(f.raw);
      const again = encodeClientMessage(jsonCodec, msg) as string;
      const expected = JSON.parse(
        fullForm(f.raw, CLIENT_MESSAGE_KEYS, { key: 'action_results', keys: RESULT_KEYS }),
      ) as Record<string, unknown>;
      if (expected.client_type === null) expected.client_type = 'device';
      expect(again).toBe(JSON.stringify(expected));
      expect(client(again)).toEqual(msg);
    });
  }

  it('§4 full client heartbeat re-encodes byte for byte', () => {
    expect(encodeClientMessage(jsonCodec, client(F.C_HEARTBEAT_FULL))).toBe(F.C_HEARTBEAT_FULL);
  });

  it('§5.2 device register: identity and metadata', () => {
    const m = client(F.C_REGISTER_DEVICE);
    expect([m.type, m.status, m.client_type, m.client_id, m.target_id]).toEqual([
      'register',
      'ok',
      'device',
      'device_win_01',
      null,
    ]);
    expect(m.metadata?.platform).toBe('windows');
    expect(m.metadata?.registration_time).toBe(F.TS);
    expect(m.metadata?.system_info).toMatchObject({
      cpu_count: 16,
      memory_total_gb: 31.73,
      platform_type: 'computer',
      schema_version: '1.0',
    });
  });

  it('§5.3 constellation register', () => {
    const m = client(F.C_REGISTER_CONSTELLATION);
    expect([m.client_type, m.client_id, m.target_id]).toEqual([
      'constellation',
      'my_constellation@device_win_01',
      'device_win_01',
    ]);
    expect(m.metadata).toMatchObject({ type: 'constellation_client', version: '2.0' });
  });

  it('§6.2 Galaxy heartbeat carries client_type device and metadata.device_id', () => {
    const m = client(F.C_HEARTBEAT_GALAXY);
    expect(m.client_type).toBe('device');
    expect(m.metadata).toEqual({ device_id: 'device_win_01' });
  });

  it('§6.3 device task: session_id null, request and metadata', () => {
    const m = client(F.C_TASK_DEVICE);
    expect([m.type, m.status, m.session_id, m.task_name, m.request, m.request_id]).toEqual([
      'task',
      'continue',
      null,
      'notepad_hello',
      'Open Notepad and type hello',
      F.UUID_B,
    ]);
    expect(m.metadata).toEqual({ platform: 'windows' });
  });

  it('§6.4 constellation task keeps the raw task_name and session_id', () => {
    const m = client(F.C_TASK_CONSTELLATION);
    expect([m.client_type, m.target_id, m.task_name, m.session_id]).toEqual([
      'constellation',
      'device_win_01',
      'galaxy/my_constellation/t1',
      'my_constellation@t1',
    ]);
  });

  it('§7.2 command_results: full Result objects in order', () => {
    const m = client(F.C_COMMAND_RESULTS);
    expect(m.prev_response_id).toBe('r-1');
    expect(m.action_results).toEqual([
      {
        status: 'success',
        error: null,
        result: 'data:image/png;base64,iVBORw0KGgo=',
        namespace: 'UICollector',
        call_id: F.UUID_C,
      },
    ]);
    const mixed = client(F.C_COMMAND_RESULTS_MIXED);
    expect(mixed.action_results?.map((r) => [r.status, r.error, r.result, r.namespace, r.call_id])).toEqual([
      ['success', '', 'No action taken.', null, 'c-1'],
      ['failure', 'tool exploded', null, 'HostUIExecutor', 'c-2'],
      ['skipped', 'Skipped due to previous failure (early_exit=True).', null, null, 'c-3'],
    ]);
  });

  it('§6.6 device_info_request', () => {
    const m = client(F.C_DEVICE_INFO_REQUEST);
    expect([m.type, m.client_type, m.target_id, m.request_id]).toEqual([
      'device_info_request',
      'constellation',
      'device_win_01',
      'device_info_device_win_01_1762252200.12',
    ]);
  });

  it('client error frame', () => {
    const m = client(F.C_ERROR);
    expect([m.type, m.status, m.error]).toEqual(['error', 'error', 'something broke']);
  });
});
