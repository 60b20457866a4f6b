/**
 * Byte parity of the JSON codec with UFO's pydantic `model_dump_json()` (ufo-aip.md §3.3, §3.4, §4),
 * and equivalence of the JSON and msgpack codecs on every wire fixture.
 */
import { describe, expect, it } from 'vitest';
import {
  SUBPROTOCOL_MSGPACK,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
  jsonCodec,
  msgpackCodec,
  negotiateCodec,
  packValue,
  type Decoded,
} from '../../protocol/index.js';
import { ALL_FRAMES, SID, TS, UUID_A, UUID_B, UUID_C } from '../fixtures/aip-frames.js';

/** Hand-written UFO forms: compact, every key present in declaration order, null for absent. */
const NULLS_AFTER_STATUS =
  '"user_request":null,"agent_name":null,"process_name":null,"root_name":null,"actions":null,"messages":null';

describe('JSON byte parity with model_dump_json()', () => {
  it('registration confirmation', () => {
    const ufo = `{"type":"heartbeat","status":"ok",${NULLS_AFTER_STATUS},"error":null,"session_id":null,"task_name":null,"timestamp":"${TS}","response_id":"${UUID_A}","result":null}`;
    expect(
      encodeServerMessage(jsonCodec, { type: 'heartbeat', status: 'ok', timestamp: TS, response_id: UUID_A }),
    ).toBe(ufo);
  });

  it('command with actions (nested Commands full and ordered)', () => {
    const ufo =
      `{"type":"command","status":"continue","user_request":null,"agent_name":"AppAgent","process_name":"WINWORD.EXE","root_name":"WINWORD.EXE",` +
      `"actions":[{"tool_name":"list_tools","parameters":{"tool_type":"action"},"tool_type":"action","call_id":"${UUID_C}"},` +
      `{"tool_name":"click_input","parameters":{"id":"5","name":"Öffnen – ✓","button":"left","double":false},"tool_type":"action","call_id":"${UUID_B}"},` +
      `{"tool_name":"get_ui_tree","parameters":null,"tool_type":"data_collection","call_id":null}],` +
      `"messages":null,"error":null,"session_id":"${SID}","task_name":"word_task","timestamp":"${TS}","response_id":"${UUID_A}","result":null}`;
    const frame = encodeServerMessage(jsonCodec, {
      // Keys deliberately out of declaration order, and nested commands with keys out of order / missing.
      response_id: UUID_A,
      actions: [
        {
          call_id: UUID_C,
          tool_type: 'action',
          parameters: { tool_type: 'action' },
          tool_name: 'list_tools',
        },
        {
          tool_type: 'action',
          tool_name: 'click_input',
          call_id: UUID_B,
          parameters: { id: '5', name: 'Öffnen – ✓', button: 'left', double: false },
        },
        { tool_name: 'get_ui_tree', tool_type: 'data_collection' },
      ],
      timestamp: TS,
      type: 'command',
      status: 'continue',
      agent_name: 'AppAgent',
      process_name: 'WINWORD.EXE',
      root_name: 'WINWORD.EXE',
      session_id: SID,
      task_name: 'word_task',
    });
    expect(frame).toBe(ufo);
  });

  it('task_end completed with a result list', () => {
    const result = [
      { request: 'Open Notepad and type hello', result: 'typed "hello"\n' },
      {
        complete: 'yes',
        sub_scores: {},
        reason: 'ok',
        level: 'session',
        request: 'Open Notepad and type hello',
        type: 'evaluation_result',
      },
    ];
    const ufo =
      `{"type":"task_end","status":"completed",${NULLS_AFTER_STATUS},"error":null,"session_id":"${SID}","task_name":null,"timestamp":"${TS}","response_id":"${UUID_B}",` +
      `"result":[{"request":"Open Notepad and type hello","result":"typed \\"hello\\"\\n"},{"complete":"yes","sub_scores":{},"reason":"ok","level":"session","request":"Open Notepad and type hello","type":"evaluation_result"}]}`;
    expect(
      encodeServerMessage(jsonCodec, {
        type: 'task_end',
        status: 'completed',
        session_id: SID,
        result,
        error: null,
        timestamp: TS,
        response_id: UUID_B,
      }),
    ).toBe(ufo);
  });

  it('task_end failed with error', () => {
    const ufo = `{"type":"task_end","status":"failed",${NULLS_AFTER_STATUS},"error":"Task was cancelled because target device disconnected","session_id":"my_constellation@t1","task_name":null,"timestamp":"${TS}","response_id":"${UUID_B}","result":null}`;
    expect(
      encodeServerMessage(jsonCodec, {
        type: 'task_end',
        status: 'failed',
        session_id: 'my_constellation@t1',
        error: 'Task was cancelled because target device disconnected',
        timestamp: TS,
        response_id: UUID_B,
      }),
    ).toBe(ufo);
  });

  it('error', () => {
    const ufo = `{"type":"error","status":"error",${NULLS_AFTER_STATUS},"error":"client_id 'dev' is already registered; duplicate registrations are not allowed","session_id":null,"task_name":null,"timestamp":"${TS}","response_id":"${UUID_A}","result":null}`;
    expect(
      encodeServerMessage(jsonCodec, {
        type: 'error',
        status: 'error',
        error: "client_id 'dev' is already registered; duplicate registrations are not allowed",
        timestamp: TS,
        response_id: UUID_A,
      }),
    ).toBe(ufo);
  });

  it('client command_results: nested Results full and ordered; absent client_type becomes device', () => {
    const ufo =
      `{"type":"command_results","status":"continue","client_type":"device","session_id":"${SID}","task_name":null,"client_id":"d1","target_id":null,"request":null,` +
      `"action_results":[{"status":"failure","error":"boom","result":null,"namespace":null,"call_id":"c-1"}],"timestamp":null,"request_id":null,"prev_response_id":"r-1","error":null,"metadata":null}`;
    expect(
      encodeClientMessage(jsonCodec, {
        prev_response_id: 'r-1',
        action_results: [{ call_id: 'c-1', error: 'boom', status: 'failure' }],
        type: 'command_results',
        status: 'continue',
        session_id: SID,
        client_id: 'd1',
      }),
    ).toBe(ufo);
  });
});

function unwrap<T>(r: Decoded<T>): T {
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

describe('msgpack and JSON decode every fixture to the same typed value', () => {
  for (const f of ALL_FRAMES) {
    it(`${f.dir} ${f.section} ${f.name}`, () => {
      if (f.dir === 'server') {
        const fromJson = unwrap(decodeServerMessage(jsonCodec, f.raw, false));
        const packed = encodeServerMessage(msgpackCodec, fromJson);
        expect(packed).toBeInstanceOf(Uint8Array);
        expect(unwrap(decodeServerMessage(msgpackCodec, packed, true))).toEqual(fromJson);
        // A plain msgpack map of the raw object (nulls kept) decodes the same.
        expect(unwrap(decodeServerMessage(msgpackCodec, packValue(JSON.parse(f.raw)), true))).toEqual(
          fromJson,
        );
        // In msgpack mode, a text frame is still parsed as JSON.
        expect(unwrap(decodeServerMessage(msgpackCodec, f.raw, false))).toEqual(fromJson);
      } else {
        const fromJson = unwrap(decodeClientMessage(jsonCodec, f.raw, false));
        const packed = encodeClientMessage(msgpackCodec, fromJson);
        expect(unwrap(decodeClientMessage(msgpackCodec, packed, true))).toEqual(fromJson);
        expect(unwrap(decodeClientMessage(msgpackCodec, packValue(JSON.parse(f.raw)), true))).toEqual(
          fromJson,
        );
        expect(unwrap(decodeClientMessage(msgpackCodec, f.raw, false))).toEqual(fromJson);
      }
    });
  }

  it('msgpack frames leave out top-level nulls and are smaller than the JSON form', () => {
    const v = unwrap(decodeServerMessage(jsonCodec, ALL_FRAMES[0]!.raw, false));
    const packed = encodeServerMessage(msgpackCodec, v) as Uint8Array;
    const json = encodeServerMessage(jsonCodec, v) as string;
    expect(packed.byteLength).toBeLessThan(Buffer.byteLength(json));
    expect(Buffer.from(packed).includes('user_request')).toBe(false);
  });
});

describe('codec negotiation', () => {
  it('picks msgpack only when offered', () => {
    expect(negotiateCodec(undefined)).toBe(jsonCodec);
    expect(negotiateCodec('')).toBe(jsonCodec);
    expect(negotiateCodec('chat, superchat')).toBe(jsonCodec);
    expect(negotiateCodec(`foo, ${SUBPROTOCOL_MSGPACK}`)).toBe(msgpackCodec);
    expect(msgpackCodec.binary).toBe(true);
    expect(jsonCodec.subprotocol).toBeNull();
  });
});
