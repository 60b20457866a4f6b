/**
 * `aipd device`: the device agent (src/client/agent/). It registers with a server, runs the tools of AIP `command`
 * frames, and serves data channels within what its flags allow (device-flags.ts): file channels inside `--root`,
 * commands and shells with `--allow-exec`, loopback ports listed by `--allow-port`. It logs JSON with pino on
 * stdout, reconnects with backoff for as long as it runs, and on SIGTERM/SIGINT kills what it started,
 * disconnects and exits 0.
 *
 * With `--plan FILE` it instead runs the plan as its own task, prints the `task_end` as JSON on stdout (logs go to
 * stderr) and exits 0 if the task completed. A dropped connection does not end the wait: it reconnects with
 * backoff, and a server that restarted resumes the task and sends its `task_end` when the device registers again;
 * it gives up (exit 1) if none has come within `--resume-wait-ms` of the drop.
 */
import { pino } from 'pino';
import { DeviceAgent } from '../client/agent/device-agent.js';
import { createLogger, type Logger } from '../logger.js';
import { parseDeviceFlags, type DeviceFlags } from './device-flags.js';

export async function runDevice(argv: string[]): Promise<number> {
  const flags = parseDeviceFlags(argv);
  const logger = createLogger(
    flags.logLevel,
    pino.destination({ dest: flags.plan === null ? 1 : 2, sync: false }),
  );
  const agent = await DeviceAgent.create({
    url: flags.url,
    token: flags.token,
    clientId: flags.clientId,
    platform: flags.platform,
    root: flags.root,
    allowExec: flags.allowExec,
    allowPorts: flags.allowPorts,
    resumeWaitMs: flags.resumeWaitMs,
    logger,
  });
  if (flags.plan !== null) return runPlan(agent, flags.plan);
  return serve(agent, flags, logger);
}

async function serve(agent: DeviceAgent, flags: DeviceFlags, logger: Logger): Promise<number> {
  const stopping = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  logger.info(
    { url: flags.url, clientId: flags.clientId, aipd_device: agent.metadata, root: flags.root ?? null },
    'device agent starting',
  );
  agent.start().catch(() => undefined); // retries until registered; rejects only once stopped
  const signal = await stopping;
  logger.info({ signal }, 'device agent stopping');
  await agent.stop();
  logger.info('device agent stopped');
  // Everything it started is closed or killed; should a handle still hold the event loop, do not hang on it.
  setTimeout(() => process.exit(0), 5000).unref();
  return 0;
}

async function runPlan(agent: DeviceAgent, plan: string): Promise<number> {
  await agent.client.connect();
  try {
    const { sessionId } = await agent.client.requestTask({ request: plan, taskName: 'sample-plan' });
    let end;
    try {
      end = await agent.client.waitTaskEnd(sessionId);
    } catch (err) {
      process.stderr.write(`aipd: ${err instanceof Error ? err.message : String(err)}\n`);
      return 1;
    }
    process.stdout.write(
      `${JSON.stringify({ status: end.status, error: end.error, result: end.result }, null, 2)}\n`,
    );
    return end.status === 'completed' ? 0 : 1;
  } finally {
    await agent.stop();
  }
}
