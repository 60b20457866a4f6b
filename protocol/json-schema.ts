/**
 * One JSON Schema document (draft 2020-12) for the AIP wire format, built from the zod schemas with
 * zod 4's `z.toJSONSchema`. `io: 'input'` describes what a peer may send: keys with defaults are optional,
 * and the envelopes do not forbid unknown keys (they are ignored, ufo-aip.md §3.6).
 * `protocol/gen-schema.ts` writes it to `protocol/aip.schema.json` (`npm run schema`).
 */
import { z } from 'zod';
import { BinaryMetadata, ChunkMetadata, FileTransferComplete, FileTransferStart } from './binary-transfer.js';
import {
  ClientMessageType,
  ClientType,
  Platform,
  ResultStatus,
  ServerMessageType,
  TaskStatus,
  ToolType,
} from './enums.js';
import { PROTOCOL_VERSION } from './index.js';
import { ClientMessage, Command, DeviceSystemInfo, Result, ServerMessage } from './messages.js';

export const SCHEMA_ID = `urn:aipd:aip:${PROTOCOL_VERSION}`;

interface DefMeta {
  id: string;
  description: string;
}

const DEFS: readonly [z.ZodType, DefMeta][] = [
  [
    ClientMessage,
    { id: 'ClientMessage', description: 'Client to server envelope (§3.2). Unknown keys are ignored.' },
  ],
  [
    ServerMessage,
    { id: 'ServerMessage', description: 'Server to client envelope (§3.3). Unknown keys are ignored.' },
  ],
  [
    Command,
    { id: 'Command', description: 'A tool call the server asks the executing device to run (§3.4).' },
  ],
  [Result, { id: 'Result', description: 'The result of one Command, in command order (§3.4).' }],
  [
    ClientMessageType,
    { id: 'ClientMessageType', description: 'ClientMessage.type (lowercase, case-sensitive).' },
  ],
  [
    ServerMessageType,
    { id: 'ServerMessageType', description: 'ServerMessage.type (lowercase, case-sensitive).' },
  ],
  [TaskStatus, { id: 'TaskStatus', description: 'status in both envelopes.' }],
  [
    ClientType,
    {
      id: 'ClientType',
      description: 'ClientMessage.client_type; defaults to device when absent, null is invalid.',
    },
  ],
  [ResultStatus, { id: 'ResultStatus', description: 'Result.status.' }],
  [ToolType, { id: 'ToolType', description: 'Command.tool_type.' }],
  [Platform, { id: 'Platform', description: 'metadata.platform of a device register message.' }],
  [
    DeviceSystemInfo,
    { id: 'DeviceSystemInfo', description: 'metadata.system_info of a device register message (§5.2).' },
  ],
  [
    BinaryMetadata,
    {
      id: 'BinaryMetadata',
      description: 'Text frame announcing one binary frame (§10). Extra keys allowed.',
    },
  ],
  [ChunkMetadata, { id: 'ChunkMetadata', description: 'BinaryMetadata of one file chunk (§10).' }],
  [FileTransferStart, { id: 'FileTransferStart', description: 'Starts a chunked file transfer (§10).' }],
  [FileTransferComplete, { id: 'FileTransferComplete', description: 'Ends a chunked file transfer (§10).' }],
];

export function buildJsonSchema(): Record<string, unknown> {
  const registry = z.registry<DefMeta>();
  for (const [schema, meta] of DEFS) registry.add(schema, meta);
  const generated = z.toJSONSchema(registry, {
    io: 'input',
    target: 'draft-2020-12',
    metadata: registry,
    uri: (id) => `#/$defs/${id}`,
  });
  const defs: Record<string, unknown> = {};
  for (const [, { id }] of DEFS) {
    const { $schema: _s, $id: _i, ...def } = generated.schemas[id] as Record<string, unknown>;
    defs[id] = def;
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: SCHEMA_ID,
    title: 'AIP (Agent Interaction Protocol) wire messages, as spoken by aipd',
    description:
      'One AIP message per WebSocket frame: a JSON object (or a msgpack map with subprotocol aip.msgpack.v1) that is a ClientMessage (client to server) or a ServerMessage (server to client). Generated from protocol/*.ts by `npm run schema`; do not edit.',
    'x-protocol-version': PROTOCOL_VERSION,
    anyOf: [{ $ref: '#/$defs/ClientMessage' }, { $ref: '#/$defs/ServerMessage' }],
    $defs: defs,
  };
}

/** The committed file's exact text: pretty-printed with a trailing newline. */
export function renderJsonSchema(): string {
  return `${JSON.stringify(buildJsonSchema(), null, 2)}\n`;
}
