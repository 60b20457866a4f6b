/** Minimal typings for the parts of autocannon's programmatic API that bench/ uses (it ships none). */
declare module 'autocannon' {
  interface Percentiles {
    average: number;
    mean: number;
    max: number;
    p50: number;
    p90: number;
    p99: number;
    total: number;
  }
  export interface AutocannonResult {
    requests: Percentiles & { sent: number };
    latency: Percentiles;
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    '2xx': number;
  }
  export interface AutocannonOptions {
    url: string;
    connections?: number;
    duration?: number;
    pipelining?: number;
    headers?: Record<string, string>;
  }
  export interface Instance {
    on(ev: 'tick', fn: () => void): void;
    stop(): void;
  }
  function autocannon(
    opts: AutocannonOptions,
    cb: (err: Error | null, result: AutocannonResult) => void,
  ): Instance;
  export default autocannon;
}
