/**
 * AIP's binary-transfer models (ufo-aip.md §10). Unlike the envelopes, these allow extra keys.
 *
 * - `binary_data`: a text frame of metadata, immediately followed by one binary frame of `size` bytes.
 * - `file_transfer_start` → `total_chunks` × (`binary_data` with `chunk_num`, then bytes) → `file_transfer_complete`.
 */
import { z } from 'zod';

const nonNegInt = z.number().int().nonnegative();

export const BinaryMetadata = z.looseObject({
  type: z.literal('binary_data').default('binary_data'),
  size: nonNegInt.optional(),
  timestamp: z.string().nullable().optional(),
  filename: z.string().nullable().optional(),
  mime_type: z.string().nullable().optional(),
  checksum: z.string().nullable().optional(),
  session_id: z.string().nullable().optional(),
  description: z.string().nullable().optional(),
});
export type BinaryMetadata = z.infer<typeof BinaryMetadata>;

export const ChunkMetadata = BinaryMetadata.extend({
  chunk_num: nonNegInt,
  chunk_size: nonNegInt,
});
export type ChunkMetadata = z.infer<typeof ChunkMetadata>;

export const FileTransferStart = z.looseObject({
  type: z.literal('file_transfer_start').default('file_transfer_start'),
  filename: z.string(),
  size: nonNegInt,
  chunk_size: z.number().int().positive(),
  total_chunks: nonNegInt,
  mime_type: z.string().nullable().optional(),
  session_id: z.string().nullable().optional(),
  description: z.string().nullable().optional(),
});
export type FileTransferStart = z.infer<typeof FileTransferStart>;

export const FileTransferComplete = z.looseObject({
  type: z.literal('file_transfer_complete').default('file_transfer_complete'),
  filename: z.string(),
  total_chunks: nonNegInt,
  checksum: z.string().nullable().optional(),
});
export type FileTransferComplete = z.infer<typeof FileTransferComplete>;

/** MD5 of the empty file, as UFO reports it for a zero-chunk transfer. */
export const EMPTY_MD5 = 'd41d8cd98f00b204e9800998ecf8427e';

/** The `type` values that announce binary-transfer control frames rather than AIP envelopes. */
export const BINARY_TRANSFER_TYPES = [
  'binary_data',
  'file_transfer_start',
  'file_transfer_complete',
] as const;
