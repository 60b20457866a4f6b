/**
 * Counterparts of UFO's tests/aip/test_messages.py (ufo-aip.md §14.1), including MessageValidator (§3.7).
 */
import { describe, expect, it } from 'vitest';
import {
  ClientMessage,
  Command,
  MessageValidator,
  Result,
  ServerMessage,
  decodeClientMessage,
  encodeClientMessage,
  isValidCommandResults,
  isValidRegistration,
  isValidServerMessage,
  isValidTaskRequest,
  jsonCodec,
} from '../../protocol/index.js';

describe('test_messages counterparts', () => {
  it('client_message_creation: a REGISTER with metadata keeps its fields', () => {
    const m = ClientMessage.parse({
      type: 'register',
      status: 'ok',
      client_id: 'test_client',
      client_type: 'device',
      metadata: { platform: 'windows' },
    });
    expect(m.type).toBe('register');
    expect(m.status).toBe('ok');
    expect(m.client_id).toBe('test_client');
    expect(m.client_type).toBe('device');
    expect(m.metadata).toEqual({ platform: 'windows' });
    expect(m.session_id).toBeNull();
  });

  it('server_message_creation: a COMMAND with one action and a response_id', () => {
    const m = ServerMessage.parse({
      type: 'command',
      status: 'continue',
      actions: [{ tool_name: 'test_tool', parameters: { arg1: 'value1' }, tool_type: 'action' }],
      response_id: 'resp_123',
    });
    expect(m.type).toBe('command');
    expect(m.actions).toHaveLength(1);
    expect(m.actions?.[0]?.tool_name).toBe('test_tool');
    expect(m.actions?.[0]?.call_id).toBeNull();
    expect(m.response_id).toBe('resp_123');
  });

  it('message_serialization: the JSON contains heartbeat and the client id', () => {
    const json = encodeClientMessage(jsonCodec, {
      type: 'heartbeat',
      status: 'ok',
      client_id: 'test_client',
    }) as string;
    expect(json).toContain('"heartbeat"');
    expect(json).toContain('"test_client"');
    expect(json.startsWith('{"type":"heartbeat","status":"ok","client_type":"device",')).toBe(true);
  });

  it('message_deserialization: parses a register frame', () => {
    const r = decodeClientMessage(
      jsonCodec,
      '{"type":"register","status":"ok","client_type":"device","client_id":"test_client","metadata":{"platform":"linux"}}',
      false,
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.type).toBe('register');
    expect(r.value.client_id).toBe('test_client');
    expect(r.value.metadata).toEqual({ platform: 'linux' });
  });

  it('command_structure: field round-trip', () => {
    const c = Command.parse({
      tool_name: 'click',
      parameters: { x: 100, y: 200 },
      tool_type: 'action',
      call_id: 'call_123',
    });
    expect(c).toEqual({
      tool_name: 'click',
      parameters: { x: 100, y: 200 },
      tool_type: 'action',
      call_id: 'call_123',
    });
    expect(Command.safeParse({ tool_name: 'click', tool_type: 'other' }).success).toBe(false);
  });

  it('result_structure: field round-trip', () => {
    const r = Result.parse({ status: 'success', result: { data: 'test' }, call_id: 'call_123' });
    expect(r).toEqual({
      status: 'success',
      error: null,
      result: { data: 'test' },
      namespace: null,
      call_id: 'call_123',
    });
  });

  it('result_with_error: a failure Result defaults result to null', () => {
    const r = Result.parse({ status: 'failure', error: 'Test error', call_id: 'call_456' });
    expect(r.status).toBe('failure');
    expect(r.error).toBe('Test error');
    expect(r.result).toBeNull();
  });
});

describe('MessageValidator (§3.7)', () => {
  const client = (v: Record<string, unknown>) => ClientMessage.parse(v);
  const server = (v: Record<string, unknown>) => ServerMessage.parse(v);

  it('validate_registration: true with a client_id, false without one or with another type', () => {
    expect(isValidRegistration(client({ type: 'register', status: 'ok', client_id: 'c1' }))).toBe(true);
    expect(
      isValidRegistration(
        client({ type: 'register', status: 'ok', client_type: 'constellation', client_id: 'k@d' }),
      ),
    ).toBe(true);
    expect(isValidRegistration(client({ type: 'register', status: 'ok' }))).toBe(false);
    expect(isValidRegistration(client({ type: 'register', status: 'ok', client_id: '' }))).toBe(false);
    expect(isValidRegistration(client({ type: 'heartbeat', status: 'ok', client_id: 'c1' }))).toBe(false);
  });

  it('validate_task_request: true with request and client_id, false without request', () => {
    expect(
      isValidTaskRequest(
        client({ type: 'task', status: 'continue', client_id: 'c1', request: 'Open Notepad' }),
      ),
    ).toBe(true);
    expect(isValidTaskRequest(client({ type: 'task', status: 'continue', client_id: 'c1' }))).toBe(false);
    expect(
      isValidTaskRequest(client({ type: 'task', status: 'continue', client_id: 'c1', request: '' })),
    ).toBe(false);
    expect(isValidTaskRequest(client({ type: 'task', status: 'continue', request: 'x' }))).toBe(false);
  });

  it('validate_command_results: true with prev_response_id and a Result list (even empty)', () => {
    const ok = client({
      type: 'command_results',
      status: 'continue',
      prev_response_id: 'r-1',
      action_results: [{ status: 'success' }],
    });
    expect(isValidCommandResults(ok)).toBe(true);
    expect(
      isValidCommandResults(
        client({ type: 'command_results', status: 'continue', prev_response_id: 'r-1', action_results: [] }),
      ),
    ).toBe(true);
    expect(
      isValidCommandResults(client({ type: 'command_results', status: 'continue', prev_response_id: 'r-1' })),
    ).toBe(false);
    expect(
      isValidCommandResults(client({ type: 'command_results', status: 'continue', action_results: [] })),
    ).toBe(false);
  });

  it('validate_server_message: a COMMAND needs actions and a response_id', () => {
    const actions = [{ tool_name: 't', tool_type: 'action' }];
    expect(
      isValidServerMessage(server({ type: 'command', status: 'continue', actions, response_id: 'r' })),
    ).toBe(true);
    expect(
      isValidServerMessage(server({ type: 'command', status: 'continue', actions: [], response_id: 'r' })),
    ).toBe(false);
    expect(isValidServerMessage(server({ type: 'command', status: 'continue', actions }))).toBe(false);
    expect(isValidServerMessage(server({ type: 'heartbeat', status: 'ok' }))).toBe(true);
  });

  it('MessageValidator exposes the same four checks', () => {
    expect(MessageValidator.validateRegistration).toBe(isValidRegistration);
    expect(MessageValidator.validateTaskRequest).toBe(isValidTaskRequest);
    expect(MessageValidator.validateCommandResults).toBe(isValidCommandResults);
    expect(MessageValidator.validateServerMessage).toBe(isValidServerMessage);
  });
});
