/**
 * Files on a remote session's device (Backend.AI's names): upload (multipart/form-data, streamed, any size),
 * download_single (raw bytes, with Range), download (a tar of several files) and files (a folder listing).
 * Paths are relative to the device's --root; the device refuses anything that leads out of it.
 */
import { Detail, notFoundDoc, ok } from '../route-docs.js';
import { z } from 'zod';
import path from 'node:path';
import { AipError, aipError } from '../../../protocol/index.js';
import type { ApiDeps } from '../deps.js';
import { json, validationAt } from '../responses.js';
import type { Route } from '../router.js';
import { iterableStream } from '../stream-body.js';
import { pathDocs, remoteError } from './remote-errors.js';
import { UploadIncomplete } from '../../remote/files.js';
import type { HttpResponse } from '../../transport/http.js';

/** `bytes=a-b`, `bytes=a-` or `bytes=-n` (one range); null for no or an unusable Range (the whole file is sent). */
export function parseRange(
  h: string | undefined,
): { start: number; end: number | null } | { suffix: number } | null {
  const m = h ? /^bytes=(\d*)-(\d*)$/.exec(h.trim()) : null;
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') return { suffix: Number(m[2]) };
  const start = Number(m[1]);
  const end = m[2] === '' ? null : Number(m[2]);
  if (!Number.isSafeInteger(start) || (end !== null && (!Number.isSafeInteger(end) || end < start)))
    return null;
  return { start, end };
}

/** 416, with the size when it is known. */
function unsatisfiable(size: number): HttpResponse {
  return {
    status: 416,
    body: { detail: 'Range Not Satisfiable' },
    headers: Number.isFinite(size) ? { 'content-range': `bytes */${size}` } : {},
  };
}

/** A failed upload's answer: why, and the files of it already written on the device (absent when none were). */
const UploadFailed = Detail.extend({
  written: z
    .array(z.object({ filename: z.string(), path: z.string(), size: z.number().int(), sha256: z.string() }))
    .optional(),
});

const missing = (name: string): HttpResponse => validationAt(['query', name], 'Field required', 'missing');

export function remoteFileRoutes(deps: ApiDeps): Route[] {
  const remote = deps.remote;
  return [
    {
      method: 'POST',
      path: '/sessions/:id/upload',
      doc: {
        summary: 'Upload files into a folder of the device (multipart/form-data)',
        tag: 'files',
        bodyType: 'multipart/form-data',
        query: z.object({ path: z.string().optional() }),
        responses: {
          200: ok('The files written'),
          404: notFoundDoc,
          400: ok(
            'The body is not valid multipart (or has too many files), or a folder is where a file goes or a file ' +
              'where a folder goes (a file already there is replaced); see `written`',
            UploadFailed,
          ),
          403: ok('A file path leads out of the root; see `written`', UploadFailed),
          409: ok('The device left or cannot take files; see `written`', UploadFailed),
          415: ok('Not multipart/form-data', Detail),
          502: ok('The device failed a file; see `written`', UploadFailed),
          504: ok('The device did not answer in time; see `written`', UploadFailed),
        },
      },
      body: 'stream',
      handle: async ({ params, query, req, bodyStream }) => {
        const type = req.headers['content-type'] ?? '';
        if (!/^multipart\/form-data\s*;/i.test(type)) {
          bodyStream?.destroy();
          return json(415, {
            detail: aipError('MULTIPART_INVALID', {
              detail: 'send Content-Type: multipart/form-data with a boundary',
            }).message,
          });
        }
        try {
          const live = await remote.sessions.get(params.id!);
          const release = remote.sessions.hold(live);
          try {
            const files = await remote.files.upload(live, bodyStream!, type, query.get('path') ?? '.');
            return json(200, { files });
          } finally {
            release();
          }
        } catch (err) {
          bodyStream?.destroy();
          if (!(err instanceof UploadIncomplete)) return remoteError(err);
          const res = remoteError(err.error);
          return json(res.status, { ...(res.body as object), written: err.written });
        }
      },
    },
    {
      method: 'GET',
      path: '/sessions/:id/download_single',
      doc: {
        summary: 'Download one file (Range supported)',
        tag: 'files',
        query: z.object({ file: z.string() }),
        responses: {
          200: { description: 'The file', contentType: 'application/octet-stream' },
          206: { description: 'Part of the file', contentType: 'application/octet-stream' },
          ...pathDocs,
          416: ok('Range not satisfiable', Detail),
        },
      },
      handle: async ({ params, query, req }) => {
        const file = query.get('file');
        if (!file) return missing('file');
        try {
          const live = await remote.sessions.get(params.id!);
          const range = parseRange(req.headers.range);
          let offset = 0;
          let length: number | undefined;
          if (range && 'suffix' in range) {
            const size = await remote.files.size(live, file);
            length = Math.min(range.suffix, size);
            offset = size - length;
          } else if (range) {
            offset = range.start;
            length = range.end === null ? undefined : range.end - range.start + 1;
          }
          if (length === 0) return unsatisfiable(await remote.files.size(live, file));
          const d = await remote.files.download(live, file, offset, length);
          if (range && d.length === 0) {
            d.cancel();
            return unsatisfiable(d.size);
          }
          const headers: Record<string, string> = {
            'content-type': 'application/octet-stream',
            'content-disposition': `attachment; filename="${path.posix.basename(file).replace(/["\\\r\n]/g, '_')}"`,
            'accept-ranges': 'bytes',
          };
          if (range) headers['content-range'] = `bytes ${d.offset}-${d.offset + d.length - 1}/${d.size}`;
          return {
            status: range ? 206 : 200,
            body: null,
            headers,
            stream: iterableStream(d.bytes, deps.log, () => d.cancel()),
          };
        } catch (err) {
          // An offset past the end: answer with the file's size (read again, as the error carries text only).
          if (err instanceof AipError && err.kind === 'FILE_BAD_OFFSET')
            return unsatisfiable(
              await remote.sessions
                .get(params.id!)
                .then((live) => remote.files.size(live, file))
                .catch(() => NaN),
            );
          return remoteError(err);
        }
      },
    },
    {
      method: 'GET',
      path: '/sessions/:id/download',
      doc: {
        summary: 'Download files and folders as one tar',
        tag: 'files',
        query: z.object({ files: z.array(z.string()).describe('repeatable') }),
        responses: {
          200: { description: 'A tar archive', contentType: 'application/x-tar' },
          ...pathDocs,
        },
      },
      handle: async ({ params, query }) => {
        const files = query.getAll('files');
        if (files.length === 0) return missing('files');
        try {
          const live = await remote.sessions.get(params.id!);
          // The first file is opened before answering, so a wrong path is a 4xx rather than a broken archive.
          await remote.files.size(live, files[0]!);
          const release = remote.sessions.hold(live);
          const tar = remote.files.tar(live, files);
          async function* bytes(): AsyncGenerator<Uint8Array> {
            for await (const c of tar) yield c;
          }
          const close = (): void => {
            tar.destroy();
            release();
          };
          return {
            status: 200,
            body: null,
            headers: {
              'content-type': 'application/x-tar',
              'content-disposition': 'attachment; filename="files.tar"',
            },
            stream: iterableStream(bytes(), deps.log, close),
          };
        } catch (err) {
          return remoteError(err);
        }
      },
    },
    {
      method: 'GET',
      path: '/sessions/:id/files',
      doc: {
        summary: 'List a folder of the device',
        tag: 'files',
        query: z.object({ path: z.string().optional() }),
        responses: { 200: ok('The entries'), ...pathDocs },
      },
      handle: async ({ params, query }) => {
        try {
          const live = await remote.sessions.get(params.id!);
          const dir = query.get('path') ?? '.';
          const listing = await remote.files.list(live, dir);
          remote.sessions.record(live, 'remote.files', { path: dir, entries: listing.files.length });
          return json(200, { path: dir, ...listing });
        } catch (err) {
          return remoteError(err);
        }
      },
    },
  ];
}
