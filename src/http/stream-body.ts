/**
 * A streamed HTTP response from an async iterable (file downloads, tar archives, execute output as SSE): chunks are
 * pulled one at a time and the next is pulled only when the socket took the last one, so the source runs at the
 * client's pace. A source that fails part-way breaks the response off (the client sees it incomplete, never a
 * clean end); a client that goes away stops the source (its `finally` runs).
 */
import type { Logger } from '../logger.js';
import type { HttpStream, HttpStreamSink } from '../transport/http.js';

/**
 * `onClose` runs exactly once when the response is over, however it ended (including a client that left before the
 * stream started, when the source's own `finally` would never run): it must release what the source holds.
 */
export function iterableStream(
  source: AsyncIterable<string | Uint8Array>,
  log: Logger,
  onClose?: () => void,
): HttpStream {
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
      try {
        onClose?.();
      } catch (err) {
        log.warn({ err }, 'releasing a streamed response failed');
      }
      const w = wake;
      wake = null;
      w?.();
      void it.return?.()?.catch(() => undefined);
    },
  };
}
