/**
 * Streams on the uWebSockets.js adapter's HTTP side (uws-http.ts): a request body read as a Readable, and a
 * streamed response (SSE) written with real backpressure — a `write` that uWS reports as backed up makes the stream
 * wait for `onWritable`; an abort or the server closing ends the stream (`close`).
 */
import { Readable } from 'node:stream';
import type uWS from 'uWebSockets.js';
import { statusLine, type HttpResponse, type HttpStream } from './http.js';

export type StreamedBody = Readable & { complete: boolean; completed: Promise<void>; unpause(): void };

/**
 * A request body as a Readable: uWS's reads are pushed in, and while the consumer is behind (push() returned
 * false) the request is paused, so the socket, not our memory, holds the rest.
 */
export function streamBody(res: uWS.HttpResponse, gone: () => boolean): StreamedBody {
  let paused = false;
  let markComplete: () => void = () => undefined;
  const body = Object.assign(
    new Readable({
      highWaterMark: 256 * 1024,
      read: () => {
        if (paused && !gone()) {
          paused = false;
          res.resume();
        }
      },
    }),
    {
      complete: false,
      completed: new Promise<void>((r) => (markComplete = r)),
      unpause: () => {
        if (!paused) return;
        paused = false;
        res.resume();
      },
    },
  );
  res.onData((chunk, isLast) => {
    if (isLast) {
      body.complete = true;
      markComplete();
    }
    if (body.destroyed) return;
    if (!body.push(Buffer.from(chunk.slice(0))) && !isLast && !gone()) {
      paused = true;
      res.pause();
    }
    if (isLast) body.push(null);
  });
  return body;
}

/**
 * Sends a streamed response's head and hands the stream a sink over `res`. Returns what ends it from outside (an
 * abort: `res` is gone). `streams` holds the ender while it runs, so closing the server ends it too.
 *
 * Backpressure: `res.write` always takes the chunk; false means uWS now holds bytes the socket did not take, and
 * the stream must wait. Once `onWritable` is registered uWS no longer drains its own buffer on a writable event
 * (HttpContext.h: the handler is expected to write), so the handler runs the stream's `drain` inside a cork: the
 * uncork writes uWS's buffered bytes out even when the stream has nothing new, and re-arms the writable poll if
 * they do not all fit. An end while bytes are still held closes the socket instead (they could not be flushed in
 * time, and the stream's client resumes where it got to).
 */
export function startStream(
  res: uWS.HttpResponse,
  out: HttpResponse,
  stream: HttpStream,
  streams: Set<() => void>,
): () => void {
  let open = true;
  let backedUp = false;
  /** `resAlive`: false after an abort, when `res` may not be touched. */
  const finish = (resAlive: boolean): void => {
    if (!open) return;
    open = false;
    streams.delete(endByServer);
    if (resAlive) {
      if (backedUp) res.close();
      else res.cork(() => res.end());
    }
    stream.close();
  };
  const endByServer = (): void => finish(true);
  streams.add(endByServer);
  res.onWritable(() => {
    if (!open) return true;
    backedUp = false;
    res.cork(() => stream.drain());
    return true;
  });
  res.cork(() => {
    res.writeStatus(statusLine(out.status));
    for (const [k, v] of Object.entries(out.headers ?? {})) res.writeHeader(k, v);
    stream.open({
      write: (chunk) => {
        if (!open) return false;
        let ok = false;
        res.cork(() => {
          ok = res.write(chunk);
        });
        if (!ok) backedUp = true;
        return ok;
      },
      end: () => finish(true),
      abort: () => {
        backedUp = true; // closes the socket instead of ending the body cleanly
        finish(true);
      },
    });
  });
  return () => finish(false);
}
