/** A hook that calls `load` now and every `ms`, keeping the last answer (or the error). */
import { useEffect, useState } from 'preact/hooks';

export function usePoll<T>(
  load: () => Promise<T>,
  ms: number,
  deps: unknown[] = [],
): { data: T | null; error: string | null } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    const tick = (): void => {
      load().then(
        (d) => {
          if (!live) return;
          setData(d);
          setError(null);
        },
        (err: unknown) => live && setError(err instanceof Error ? err.message : String(err)),
      );
    };
    tick();
    const t = setInterval(tick, ms);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, deps);
  return { data, error };
}

/** The connected devices, for the terminal's and files' pickers. */
export interface ClientView {
  client_id: string;
  client_type: 'device' | 'constellation';
  platform: string;
  target_id: string | null;
  node: string;
  connected_at: string;
}
