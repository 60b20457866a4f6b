/**
 * protocol/aip.schema.json is generated from the zod schemas and must stay in sync with them.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../protocol/index.js';
import { buildJsonSchema, renderJsonSchema, SCHEMA_ID } from '../../protocol/json-schema.js';

type Def = {
  properties: Record<string, Record<string, unknown>>;
  required?: string[];
  additionalProperties?: unknown;
};

const schemaPath = fileURLToPath(new URL('../../protocol/aip.schema.json', import.meta.url));

describe('JSON Schema', () => {
  const doc = buildJsonSchema() as {
    $id: string;
    title: string;
    'x-protocol-version': string;
    $defs: Record<string, Def>;
  };

  it('the committed protocol/aip.schema.json matches the zod schemas (run `npm run schema` if this fails)', () => {
    const committed = readFileSync(schemaPath, 'utf8');
    expect(committed, 'protocol/aip.schema.json is stale: run `npm run schema` and commit the result').toBe(
      renderJsonSchema(),
    );
    expect(committed.endsWith('}\n')).toBe(true);
  });

  it('has an $id, a title, the protocol version and every definition', () => {
    expect(doc.$id).toBe(SCHEMA_ID);
    expect(doc.$id).toContain(PROTOCOL_VERSION);
    expect(doc.title).toMatch(/AIP/);
    expect(doc['x-protocol-version']).toBe(PROTOCOL_VERSION);
    expect(Object.keys(doc.$defs).sort()).toEqual(
      [
        'BinaryMetadata',
        'ChunkMetadata',
        'ClientMessage',
        'ClientMessageType',
        'ClientType',
        'Command',
        'DeviceSystemInfo',
        'FileTransferComplete',
        'FileTransferStart',
        'Platform',
        'Result',
        'ResultStatus',
        'ServerMessage',
        'ServerMessageType',
        'TaskStatus',
        'ToolType',
      ].sort(),
    );
  });

  it('describes inputs: only the truly required keys are required, unknown keys are not forbidden', () => {
    const d = doc.$defs;
    expect(d.ClientMessage!.required).toEqual(['type', 'status']);
    expect(d.ServerMessage!.required).toEqual(['type', 'status']);
    expect(d.Command!.required).toEqual(['tool_name', 'tool_type']);
    expect(d.Result!.required).toEqual(['status']);
    expect(d.ClientMessage!.additionalProperties).toBeUndefined();
    expect(d.ClientMessage!.properties.client_type).toMatchObject({
      default: 'device',
      $ref: '#/$defs/ClientType',
    });
    expect(Object.keys(d.ClientMessage!.properties)).toEqual([
      'type',
      'status',
      'client_type',
      'session_id',
      'task_name',
      'client_id',
      'target_id',
      'request',
      'action_results',
      'timestamp',
      'request_id',
      'prev_response_id',
      'error',
      'metadata',
    ]);
    expect(JSON.stringify(d.ServerMessage!.properties.actions)).toContain('#/$defs/Command');
    expect(JSON.stringify(d.ClientMessage!.properties.action_results)).toContain('#/$defs/Result');
    // The binary-transfer models allow extra keys.
    expect(d.FileTransferStart!.additionalProperties).toEqual({});
    expect(d.ChunkMetadata!.required).toEqual(['chunk_num', 'chunk_size']);
  });

  it('every $ref points at a definition', () => {
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/\$defs\/([A-Za-z]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(5);
    for (const r of refs) expect(doc.$defs).toHaveProperty(r);
  });
});
