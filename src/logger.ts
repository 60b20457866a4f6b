/** pino root logger factory. Components receive child loggers carrying their ids; there is no global logger. */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/**
 * The root logger at `level`. `format: 'pretty'` writes pino-pretty's colourised lines to stderr (synchronously,
 * no worker thread); `json` (the default) one JSON object a line.
 */
export function createLogger(
  level: string,
  destination?: pino.DestinationStream,
  format: 'json' | 'pretty' = 'json',
): Logger {
  const opts: pino.LoggerOptions = {
    level,
    base: { name: 'aipd' },
    redact: {
      paths: [
        'token',
        'apiKey',
        'llmApiKey',
        '*.apiKey',
        '*.llmApiKey',
        'headers["x-api-key"]',
        'headers.authorization',
        'headers["api-key"]',
      ],
      censor: '[redacted]',
    },
  };
  if (destination) return pino(opts, destination);
  if (format === 'pretty') return pino(opts, pretty({ destination: 2, sync: true }));
  return pino(opts, pino.destination({ dest: 2, sync: false }));
}

/** A logger that discards everything (tests, benchmarks). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
