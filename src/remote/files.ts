/**
 * Files on a remote session's device, through `file` channels (the device confines every path to its --root):
 * list a folder, upload multipart/form-data parts as they stream in (hashed on the way, checked by the device
 * against the FIN trailer), download one file (optionally a byte range) or several as a tar stream. Nothing is
 * buffered whole: each byte moves at the pace of the slower side, through the channel's credit window.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import tar from 'tar-stream';
import { aipError, AipError } from '../../protocol/index.js';
import { errorFromCode } from '../channel/endpoint.js';
import { ChannelReader } from '../client/channels/records.js';
import type { LiveRemote, RemoteSessions } from './remote-sessions.js';

/** Largest folder listing accepted from a device (bytes of JSON). */
export const MAX_LISTING_BYTES = 8 * 1024 * 1024;
const CHUNK = 256 * 1024;

const ignore = (): void => undefined;

export interface FileEntry {
  readonly filename: string;
  readonly size: number;
  readonly mode: string;
  readonly mtime: string;
  readonly is_dir: boolean;
}

export interface UploadedFile {
  readonly filename: string;
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

/**
 * An upload that failed after some of its files were written on the device: `error` is why it stopped (an
 * AipError, or what broke the body), `written` the files that are in place (each whole, checked by its SHA-256).
 * The answer names them, so a client does not send again what landed, nor take it for lost.
 */
export class UploadIncomplete extends Error {
  constructor(
    readonly error: Error,
    readonly written: readonly UploadedFile[],
  ) {
    super(error.message);
  }
}

/** An open download: its size and range, and its bytes (checked against the device's SHA-256 at the end). */
export interface Download {
  readonly size: number;
  readonly offset: number;
  readonly length: number;
  readonly bytes: AsyncGenerator<Uint8Array>;
  /** Stops it (idempotent; also right when `bytes` was never read): the channel is reset and the hold released. */
  cancel(): void;
}

export class RemoteFiles {
  constructor(
    private readonly remote: RemoteSessions,
    private readonly uploadMaxFiles: number,
  ) {}

  async list(live: LiveRemote, dir: string): Promise<{ files: FileEntry[]; truncated: boolean }> {
    const ep = await this.remote.openChannel(live, 'file', { op: 'list', path: dir });
    try {
      void ep.end().catch(() => undefined);
      const parts: Uint8Array[] = [];
      let bytes = 0;
      for (let c = await ep.read(); c !== null; c = await ep.read()) {
        bytes += c.byteLength;
        if (bytes > MAX_LISTING_BYTES + 4)
          throw aipError('CHANNEL_PROTOCOL', { channel: ep.channel, detail: 'folder listing too large' });
        parts.push(c);
      }
      const all = Buffer.concat(parts);
      const len = all.byteLength >= 4 ? all.readUInt32BE(0) : -1;
      if (len !== all.byteLength - 4)
        throw aipError('CHANNEL_PROTOCOL', { channel: ep.channel, detail: 'bad listing record' });
      let v: { files?: unknown; truncated?: unknown };
      try {
        v = JSON.parse(all.subarray(4).toString('utf8')) as typeof v;
      } catch {
        throw aipError('CHANNEL_PROTOCOL', { channel: ep.channel, detail: 'listing is not JSON' });
      }
      if (!Array.isArray(v.files))
        throw aipError('CHANNEL_PROTOCOL', { channel: ep.channel, detail: 'listing has no files' });
      return { files: v.files as FileEntry[], truncated: v.truncated === true };
    } catch (err) {
      ep.reset(asAipError(err));
      throw err;
    }
  }

  /**
   * Streams each file part of a multipart/form-data body to `dir/<filename>` on the device. Parts are taken one
   * at a time; busboy reads the body only as fast as the current file goes out.
   */
  async upload(live: LiveRemote, body: Readable, contentType: string, dir: string): Promise<UploadedFile[]> {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: { 'content-type': contentType },
        preservePath: true,
        limits: {
          files: this.uploadMaxFiles,
          fields: 32,
          fieldSize: 64 * 1024,
          parts: this.uploadMaxFiles + 32,
        },
      });
    } catch (err) {
      body.destroy();
      throw aipError('MULTIPART_INVALID', { detail: err instanceof Error ? err.message : String(err) });
    }
    const done: UploadedFile[] = [];
    const failed: { err: Error | null } = { err: null };
    let chain = Promise.resolve();
    let tooMany = false;
    bb.on('file', (_field, stream, info) => {
      // busboy destroys a part with an error when the body ends early or breaks off; that may happen before the
      // part's turn to be read comes. The error stays on the stream (its reader meets it); an 'error' event with
      // no listener would end the process.
      stream.on('error', ignore);
      chain = chain.then(async () => {
        if (failed.err !== null) return void stream.resume();
        try {
          done.push(await this.uploadOne(live, stream, dir, info.filename));
        } catch (err) {
          failed.err = err instanceof Error ? err : new Error(String(err));
          stream.resume();
        }
      });
    });
    bb.on('filesLimit', () => (tooMany = true));
    const parsed = new Promise<void>((resolve, reject) => {
      bb.once('close', resolve);
      bb.once('error', (e: unknown) =>
        reject(aipError('MULTIPART_INVALID', { detail: e instanceof Error ? e.message : String(e) })),
      );
      body.once('error', (e: Error) => {
        bb.destroy(e); // the part being read fails too, so its channel is reset and the chain ends
        reject(e);
      });
    });
    body.pipe(bb);
    let error: Error | null = null;
    try {
      await parsed;
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err));
    } finally {
      await chain;
    }
    error ??=
      failed.err ??
      (tooMany ? aipError('MULTIPART_INVALID', { detail: `more than ${this.uploadMaxFiles} files` }) : null);
    if (error !== null) throw done.length === 0 ? error : new UploadIncomplete(error, done);
    if (done.length === 0) throw aipError('MULTIPART_INVALID', { detail: 'no file parts' });
    return done;
  }

  private async uploadOne(
    live: LiveRemote,
    stream: Readable,
    dir: string,
    name: string | undefined,
  ): Promise<UploadedFile> {
    const filename =
      name && name.length > 0
        ? name
        : `upload-${createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 24)}`;
    const target = dir === '.' || dir === '' ? filename : path.posix.join(dir, filename);
    const ep = await this.remote.openChannel(live, 'file', { op: 'upload', path: target });
    const reader = new ChannelReader(ep);
    try {
      const head = await reader.readRecord();
      if (head.offset !== 0)
        throw aipError('CHANNEL_PROTOCOL', { channel: ep.channel, detail: 'upload offset is not 0' });
      const h = createHash('sha256');
      let size = 0;
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        h.update(chunk);
        size += chunk.byteLength;
        await ep.write(chunk);
      }
      const sha256 = h.digest('hex');
      await ep.end({ size, sha256 });
      const res = await reader.readRecord();
      if (res.ok !== true) throw errorFromCode(Number(res.code), String(res.message));
      this.remote.record(live, 'remote.upload', { path: target, size, sha256 });
      return { filename, path: target, size, sha256 };
    } catch (err) {
      ep.reset(asAipError(err));
      throw err;
    }
  }

  /**
   * Opens `file` for reading from `offset` (`length` bytes, or to the end). Throws FILE_* errors from the device.
   * A download from offset 0 to the end is checked against the whole file's SHA-256; any other against the SHA-256
   * of the bytes sent (the device clamps `length` to the file).
   */
  async download(live: LiveRemote, file: string, offset = 0, length?: number): Promise<Download> {
    const ranged = offset > 0 || length !== undefined;
    const ep = await this.remote.openChannel(live, 'file', {
      op: 'download',
      path: file,
      offset,
      ...(ranged ? { length: length ?? Number.MAX_SAFE_INTEGER - offset } : {}),
    });
    void ep.end().catch(() => undefined);
    const reader = new ChannelReader(ep);
    let head: Record<string, unknown>;
    try {
      head = await reader.readRecord();
    } catch (err) {
      ep.reset(asAipError(err));
      throw err;
    }
    const size = Number(head.size);
    const count = ranged ? Number(head.length) : size - offset;
    const release = this.remote.hold(live);
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      if (!ok) ep.reset(aipError('CHANNEL_CANCELLED'));
      release();
    };
    this.remote.record(live, 'remote.download', { path: file, offset, length: count });
    return {
      size,
      offset,
      length: count,
      bytes: readBytes(reader, count, finish),
      cancel: () => finish(false),
    };
  }

  /** The size of `file` on the device (FILE_* errors when it cannot be read). */
  async size(live: LiveRemote, file: string): Promise<number> {
    const ep = await this.remote.openChannel(live, 'file', {
      op: 'download',
      path: file,
      offset: 0,
      length: 0,
    });
    void ep.end().catch(() => undefined);
    try {
      return Number((await new ChannelReader(ep).readRecord()).size);
    } finally {
      ep.reset(aipError('CHANNEL_CANCELLED'));
    }
  }

  /** A tar stream of `files` (each read through its own channel, one after the other). */
  tar(live: LiveRemote, files: readonly string[]): TarStream {
    // tar-stream 3 runs on streamx; its @types describe v2's Node streams, so only what both share is used.
    const pack = tar.pack() as unknown as PackLike;
    let gone = false;
    const wakers = new Set<() => void>();
    const stop = (err?: Error): void => {
      gone = true;
      for (const w of wakers) w();
      pack.destroy(err);
    };
    const run = async (): Promise<void> => {
      for (const f of files) {
        if (gone) return;
        const d = await this.download(live, f);
        try {
          const entry = pack.entry({ name: f, size: d.length, mode: 0o644, mtime: new Date() });
          const written = new Promise<void>((resolve, reject) => {
            entry.once('finish', resolve);
            entry.once('error', reject);
          });
          written.catch(() => undefined); // a destroyed pack fails the entry; `run` sees `gone` instead
          for await (const chunk of d.bytes) {
            if (gone) return;
            if (entry.write(chunk)) continue;
            // A destroyed pack never drains: wake on `stop` too.
            await new Promise<void>((r) => {
              const wake = (): void => {
                wakers.delete(wake);
                r();
              };
              wakers.add(wake);
              entry.once('drain', wake);
            });
          }
          entry.end();
          await written;
        } finally {
          d.cancel(); // a no-op when the file was read whole
        }
      }
      pack.finalize();
    };
    run().catch((err: unknown) => {
      if (!gone) stop(err instanceof Error ? err : new Error(String(err)));
    });
    return {
      [Symbol.asyncIterator]: () => pack[Symbol.asyncIterator](),
      destroy: (err?: Error) => stop(err),
    };
  }
}

/** What the HTTP layer reads from `tar()`: the archive's bytes, at the reader's pace. */
export interface TarStream extends AsyncIterable<Uint8Array> {
  destroy(err?: Error): void;
}
interface EntryLike {
  write(chunk: Uint8Array): boolean;
  end(): void;
  once(event: 'finish' | 'drain', fn: () => void): void;
  once(event: 'error', fn: (err: Error) => void): void;
}
interface PackLike extends TarStream {
  entry(header: { name: string; size: number; mode: number; mtime: Date }): EntryLike;
  finalize(): void;
}

/** The bytes of a download, then its SHA-256 trailer checked; stopping early resets the channel. */
async function* readBytes(
  reader: ChannelReader,
  count: number,
  finish: (ok: boolean) => void,
): AsyncGenerator<Uint8Array> {
  const h = createHash('sha256');
  let left = count;
  let ok = false;
  try {
    while (left > 0) {
      const c = await reader.readSome(Math.min(CHUNK, left));
      if (c === null) throw aipError('FILE_SIZE_MISMATCH', { expected: count, got: count - left });
      h.update(c);
      left -= c.byteLength;
      yield c;
    }
    const { sha256 } = await reader.readRecord();
    const got = h.digest('hex');
    if (sha256 !== got) throw aipError('FILE_CHECKSUM_MISMATCH', { expected: String(sha256), got });
    ok = true;
  } finally {
    finish(ok);
  }
}

function asAipError(err: unknown): AipError {
  return err instanceof AipError
    ? err
    : aipError('FILE_IO', { detail: err instanceof Error ? err.message : String(err) });
}
