/** pino root logger factory. Components receive child loggers carrying their ids; there is no global logger. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
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
  return destination ? pino(opts, destination) : pino(opts, pino.destination({ dest: 2, sync: false }));
}

/** A logger that discards everything (tests, benchmarks). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
