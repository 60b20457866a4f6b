/**
 * The device agent behind `aipd device`: an AipDeviceClient that serves the agent's tools for `command` frames
 * and data channels (file, stream, port) through a ChannelMux, within the limits it was started with.
 *
 * - It advertises what it serves in its `register` metadata as `aipd_device` (`AgentMetadata`), so a server can
 *   choose what to ask of it.
 * - It connects with backoff until it is registered (also the first time: a service may start before its
 *   server), and reconnects after every drop; each registration is logged as `registered as <id>`.
 * - `stop()` fails its channels (which kills their process groups), kills every other process group it started,
 *   and disconnects.
 */
import type { Logger } from 'pino';
import { aipError, type Platform } from '../../../protocol/index.js';
import type { ChannelKind } from '../../../protocol/channel.js';
import type { ChannelMux } from '../../channel/mux.js';
import { attachChannelMux } from '../channels/attach.js';
import { createDeviceChannelHandler } from '../channels/device.js';
import { loadNodePty } from '../channels/pty.js';
import type { ReconnectOptions } from '../connection.js';
import { AipDeviceClient } from '../device.js';
import { ProcessGroups } from '../process-group.js';
import { runTool } from './tools.js';

/** The device's receive window on every channel (uploads to it are bulk writes); the server caps it at 1 MiB. */
export const DEVICE_RECEIVE_WINDOW = 1024 * 1024;

export interface DeviceAgentOptions {
  readonly url: string;
  readonly token: string;
  readonly clientId: string;
  readonly platform: Platform;
  /** Confines file channels and the working folder of commands; file channels are off without it. */
  readonly root?: string;
  /** Enables `stream` channels and the `execute_command` tool. */
  readonly allowExec: boolean;
  /** Loopback ports `port` channels may reach; none → every port is refused. */
  readonly allowPorts: readonly number[];
  readonly logger: Logger;
  /** Backoff of the first connection and of reconnects; default 500 ms doubling to 10 s, without end. */
  readonly reconnect?: ReconnectOptions;
  /** The client's `resumeWaitMs`: how long a `task_end` wait outlives a dropped connection. */
  readonly resumeWaitMs?: number;
}

/** `metadata.aipd_device` of the agent's `register` frame. */
export interface AgentMetadata {
  readonly version: 1;
  /** The channel kinds it serves. */
  readonly channels: ChannelKind[];
  readonly exec: boolean;
  /** node-pty loaded: stream channels can run in a real PTY. */
  readonly pty: boolean;
  /** A root folder is set (file channels are served). */
  readonly root: boolean;
  readonly ports: number[];
}

export class DeviceAgent {
  readonly client: AipDeviceClient;
  readonly mux: ChannelMux;
  readonly groups = new ProcessGroups();
  readonly metadata: AgentMetadata;
  private readonly log: Logger;
  private stopped = false;
  private readonly stopping = new AbortController();
  private retryTimer: { timer: NodeJS.Timeout; wake: () => void } | null = null;

  private constructor(
    private readonly opts: DeviceAgentOptions,
    pty: boolean,
  ) {
    this.log = opts.logger;
    const root = opts.root !== undefined;
    const ports = [...opts.allowPorts];
    this.metadata = {
      version: 1,
      channels: [
        ...(root ? (['file'] as const) : []),
        ...(opts.allowExec ? (['stream'] as const) : []),
        ...(ports.length > 0 ? (['port'] as const) : []),
      ],
      exec: opts.allowExec,
      pty,
      root,
      ports,
    };
    const ctx = {
      allowExec: opts.allowExec,
      cwd: opts.root,
      groups: this.groups,
      signal: this.stopping.signal,
    };
    this.client = new AipDeviceClient({
      url: opts.url,
      token: opts.token,
      clientId: opts.clientId,
      platform: opts.platform,
      reconnect: opts.reconnect ?? {},
      ...(opts.resumeWaitMs !== undefined ? { resumeWaitMs: opts.resumeWaitMs } : {}),
      logger: opts.logger,
      metadata: () => ({ aipd_device: this.metadata }),
      onCommand: async (cmd) => {
        const results = [];
        for (const action of cmd.actions ?? []) results.push(await runTool(action, ctx));
        return results;
      },
    });
    this.mux = attachChannelMux(this.client, {
      receiveWindow: DEVICE_RECEIVE_WINDOW,
      onOpen: createDeviceChannelHandler({
        fileRoot: opts.root,
        stream: opts.allowExec ? { groups: this.groups, root: opts.root } : false,
        port: { ports },
        logger: opts.logger,
      }),
    });
    this.client.on('registered', ({ reconnected }) =>
      this.log.info({ clientId: opts.clientId, reconnected }, `registered as ${opts.clientId}`),
    );
    this.client.on('disconnected', ({ code, reason, willReconnect }) => {
      if (this.stopped) this.log.info({ code, reason }, 'disconnected');
      else this.log.warn({ code, reason, willReconnect }, 'disconnected');
    });
    this.client.on('reconnecting', ({ attempt, delayMs }) =>
      this.log.info({ attempt, delayMs }, 'reconnecting'),
    );
  }

  /** Loads node-pty when exec is on (to advertise `pty`), and builds the agent. */
  static async create(opts: DeviceAgentOptions): Promise<DeviceAgent> {
    const pty = opts.allowExec ? (await loadNodePty(opts.logger)) !== null : false;
    return new DeviceAgent(opts, pty);
  }

  /** Connects, retrying with backoff until registered; rejects only if `stop()` ran first. */
  async start(): Promise<void> {
    const rc = { initialDelayMs: 500, maxDelayMs: 10_000, ...this.opts.reconnect };
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) throw new Error('device agent stopped');
      let failure: Error | undefined;
      try {
        await this.client.connect();
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
      }
      if (this.stopped) throw new Error('device agent stopped', { cause: failure });
      if (failure === undefined) return;
      if (rc.maxRetries !== undefined && attempt >= rc.maxRetries) throw failure;
      const base = Math.min(rc.initialDelayMs * 2 ** attempt, rc.maxDelayMs);
      const delayMs = Math.round(Math.min(base * (0.8 + Math.random() * 0.4), rc.maxDelayMs));
      this.log.warn({ reason: failure.message, attempt: attempt + 1, delayMs }, 'cannot register; retrying');
      await new Promise<void>((wake) => {
        this.retryTimer = { timer: setTimeout(wake, delayMs), wake };
      });
      this.retryTimer = null;
    }
  }

  /** Fails every channel (killing their processes), kills the other process groups it started, disconnects. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.retryTimer) {
      clearTimeout(this.retryTimer.timer);
      this.retryTimer.wake();
    }
    this.stopping.abort();
    const channels = this.mux.size;
    this.mux.closeAll(aipError('CHANNEL_PEER_GONE'));
    const killed = this.groups.killAll();
    this.log.info({ channels, killed }, 'stopping');
    await this.client.close();
  }
}
