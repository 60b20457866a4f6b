#!/usr/bin/env -S node --max-semi-space-size=4 --no-allocation-site-pretenuring --no-parallel-scavenge
/**
 * The `aipd` command: `aipd serve [flags]`, `aipd device`, `aipd batch`, `aipd loadtest [flags]`, `aipd help`.
 * Bad flags or config: a one-line error naming it, exit code 2.
 */
import { ConfigError, loadConfig } from '../config.js';
import { ListenError } from '../transport/listen.js';
import { startServer } from '../app/server.js';

const USAGE = `usage: aipd <command> [flags]

commands:
  serve      run the AIP server (flags: --port 5000 --host 127.0.0.1 --api-key KEY --platform windows|linux|mobile
             --log-level info --config FILE --local --registration-timeout-ms --command-timeout-ms
             --max-unregistered --max-sessions-per-device --max-payload-bytes --outbound-budget-bytes
             --slow-consumer-timeout-ms --idle-timeout-sec --channel-open-timeout-ms, and the limits in the README
             (--max-depth --max-url-bytes --max-header-count --max-http-body-bytes ...); natural-language tasks:
             --llm-base-url URL --llm-model NAME (key in env AIPD_LLM_API_KEY) --llm-max-steps --llm-timeout-ms
             --llm-temperature --llm-token-budget ...; remote execution: --remote-idle-timeout-ms
             --stream-token-ttl-ms --execute-timeout-ms --service-bind-host --public-url ...; operations:
             --metrics on|off --metrics-token TOKEN --log-format json|pretty --ready-timeout-ms; each also as env
             AIPD_<FLAG>)
  device     run the device agent (--url --token --client-id --platform --root DIR --allow-exec
             --allow-port PORT[,PORT] --log-level; --plan FILE runs a plan as its own task, --resume-wait-ms)
  batch      run a plan file or a folder of plans as tasks on a device (--target DEVICE --mode follower|batch_normal
             --plan FILE_OR_FOLDER --concurrency 1 --status-file F --url --token --client-id --resume-wait-ms)
  loadtest   load-test an aipd server (--url --token --devices --steps --duration --codec json|msgpack)
  help       show this text`;

async function serve(argv: string[]): Promise<number> {
  const generated =
    !argv.some((a) => a === '--api-key' || a.startsWith('--api-key=')) && !process.env.AIPD_API_KEY;
  const config = loadConfig(argv);
  const server = await startServer(config);
  process.stdout.write(`aipd listening on ws://${config.host}:${server.port}/ws\n`);
  if (generated) {
    process.stdout.write(
      `API key (generated): ${config.apiKey}\n  connect devices to ws://${config.host}:${server.port}/ws?token=<key>; send X-API-Key: <key> to /api\n`,
    );
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void server.close().then(() => {
        // Everything is closed and stored. A socket whose close frame its peer never read may still be held by
        // uWS for its own timeout (15 s): it gets one more --shutdown-grace-ms, then the process ends anyway. The
        // timer is unref'd, so an otherwise idle process exits at once.
        setTimeout(() => process.exit(process.exitCode ?? 0), config.shutdownGraceMs).unref();
        resolve();
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'device': {
      const { runDevice } = await import('./device.js');
      return runDevice(rest);
    }
    case 'batch': {
      const { runBatch } = await import('./batch.js');
      return runBatch(rest);
    }
    case 'loadtest': {
      const { runLoadtest } = await import('./loadtest.js');
      return runLoadtest(rest);
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`aipd: unknown command '${command}'\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof ListenError) {
      process.stderr.write(`aipd: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`aipd: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
