/**
 * A streamed HTTP response from an async iterable (file downloads, tar archives, execute output as SSE): chunks are
 * pulled one at a time and the next is pulled only when the socket took the last one, so the source runs at the
 * client's pace. A source that fails part-way breaks the response off (the client sees it incomplete, never a
 * clean end); a client that goes away stops the source (its `finally` runs).
 */
import type { Logger } from '../logger.js';
import type { HttpStream, HttpStreamSink } from '../transport/http.js';

export function iterableStream(source: AsyncIterable<string | Uint8Array>, log: Logger): HttpStream {
  let sink: HttpStreamSink | null = null;
  let closed = false;
  let wake: (() => void) | null = null;
  const it = source[Symbol.asyncIterator]();
  const run = async (): Promise<void> => {
    try {
      for (;;) {
        const r = await it.next();
        if (r.done || closed) break;
        if (!sink!.write(r.value) && !closed) await new Promise<void>((resolve) => (wake = resolve));
      }
      if (!closed) sink!.end();
    } catch (err) {
      log.info({ err }, 'streamed response broken off');
      sink!.abort();
    }
  };
  return {
    open(s) {
      sink = s;
      void run();
    },
    drain() {
      const w = wake;
      wake = null;
      w?.();
    },
    close() {
      if (closed) return;
      closed = true;
      const w = wake;
      wake = null;
      w?.();
      void it.return?.()?.catch(() => undefined);
    },
  };
}
