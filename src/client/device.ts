/**
 * A device client: registers with `client_type: "device"`, executes the server's `command` frames through
 * a handler and answers with `command_results`, and can request tasks for itself (ufo-aip.md §5.2, §6.3,
 * §6.5, §7.2).
 *
 * Commands of one session run one at a time in arrival order; different sessions run concurrently.
 */
import { randomUUID } from 'node:crypto';
import type {
  ClientMessageInput,
  DeviceSystemInfo,
  Platform,
  ResultInput,
  ServerMessage,
} from '../../protocol/index.js';
import { AipClientBase, type BaseClientOptions, type TaskAck, type TaskRequest } from './client-base.js';
import { failAll, normalizeResults } from './results.js';
import { collectSystemInfo } from './system-info.js';

export type CommandHandler = (cmd: ServerMessage) => Promise<ResultInput[]> | ResultInput[];
export type TaskHandler = (msg: ServerMessage) => void;

export interface DeviceClientOptions extends BaseClientOptions {
  /** `metadata.platform`, which selects the server's session class; default `linux`. */
  platform?: Platform;
  /** `metadata.system_info`; default collected from `node:os`. */
  systemInfo?: DeviceSystemInfo | Record<string, unknown>;
  /** Runs a `command` frame's actions; default answers each action with a failure "no handler". */
  onCommand?: CommandHandler;
  /** Server-pushed `task` (HTTP dispatch); default requests it as this device's own task, like UFO's client. */
  onTask?: TaskHandler;
  /**
   * More `register` metadata (e.g. `aipd_device`, what a device agent serves). Read at every registration; the
   * standard keys (`system_info`, `registration_time`, `platform`) win over these.
   */
  metadata?: Record<string, unknown> | (() => Record<string, unknown>);
}

export const NO_HANDLER_ERROR = 'No command handler is configured on this device client';

const noHandler: CommandHandler = (cmd) => failAll(cmd.actions ?? [], NO_HANDLER_ERROR);

export class AipDeviceClient extends AipClientBase {
  readonly platform: Platform;
  private readonly systemInfo: DeviceSystemInfo | Record<string, unknown>;
  private readonly onCommand: CommandHandler;
  private readonly onTask: TaskHandler | null;
  private readonly extraMetadata: DeviceClientOptions['metadata'];
  /** Tail of each session's command chain. */
  private readonly chains = new Map<string, Promise<void>>();
  /** Session of a server-pushed task the default `onTask` is running ('' while its ACK is pending). */
  private pushedTask: string | null = null;

  constructor(opts: DeviceClientOptions) {
    super(opts, 'device');
    this.platform = opts.platform ?? 'linux';
    this.systemInfo = opts.systemInfo ?? collectSystemInfo(opts.clientId, this.platform);
    this.onCommand = opts.onCommand ?? noHandler;
    this.onTask = opts.onTask ?? null;
    this.extraMetadata = opts.metadata;
    this.conn.on('disconnected', () => {
      this.pushedTask = null;
    });
  }

  /** Sends `task` for this device; resolves with the ACK's session id, rejects on an `error` reply. */
  requestTask(req: TaskRequest): Promise<TaskAck> {
    return this.sendTask({
      type: 'task',
      status: 'continue',
      client_type: 'device',
      client_id: this.clientId,
      session_id: req.sessionId ?? null,
      task_name: req.taskName ?? null,
      request: req.request,
      metadata: { platform: this.platform },
    });
  }

  /** Resolves once every command received so far has been answered (or dropped). */
  async idle(): Promise<void> {
    while (this.chains.size > 0) await Promise.all([...this.chains.values()]);
  }

  protected registerMessage(): ClientMessageInput {
    const now = new Date().toISOString();
    return {
      type: 'register',
      status: 'ok',
      client_type: 'device',
      client_id: this.clientId,
      timestamp: now,
      metadata: {
        ...(typeof this.extraMetadata === 'function' ? this.extraMetadata() : this.extraMetadata),
        system_info: this.systemInfo,
        registration_time: now,
        platform: this.platform,
      },
    };
  }

  protected override handleFrame(msg: ServerMessage): void {
    if (msg.type === 'command') this.enqueue(msg);
    else if (msg.type === 'task') this.pushed(msg);
    else if (msg.type === 'task_end' && msg.session_id !== null && msg.session_id === this.pushedTask)
      this.pushedTask = null;
  }

  private enqueue(cmd: ServerMessage): void {
    const key = cmd.session_id ?? '';
    const prev = this.chains.get(key) ?? Promise.resolve();
    const next = prev.then(() => this.execute(cmd));
    this.chains.set(key, next);
    void next.finally(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
  }

  /** Runs one command and sends its results. Never rejects. */
  private async execute(cmd: ServerMessage): Promise<void> {
    const actions = cmd.actions ?? [];
    let results: ResultInput[];
    if (actions.length === 0) {
      results = [];
    } else {
      try {
        results = normalizeResults(actions, await this.onCommand(cmd));
      } catch (err) {
        const text = err instanceof Error ? err.message : String(err);
        this.log.warn(
          { err, sessionId: cmd.session_id, responseId: cmd.response_id },
          'command handler threw',
        );
        results = failAll(actions, `Command handler failed: ${text}`);
      }
    }
    const sent = this.conn.send({
      type: 'command_results',
      status: cmd.status,
      client_type: 'device',
      client_id: this.clientId,
      session_id: cmd.session_id,
      action_results: results,
      timestamp: new Date().toISOString(),
      request_id: randomUUID(),
      prev_response_id: cmd.response_id,
    });
    if (!sent)
      this.log.warn(
        { sessionId: cmd.session_id, responseId: cmd.response_id },
        'results dropped: not connected',
      );
  }

  private pushed(msg: ServerMessage): void {
    if (this.onTask) {
      this.onTask(msg);
      return;
    }
    if (this.pushedTask !== null) {
      this.log.info({ taskName: msg.task_name }, 'ignoring pushed task: a task is already running');
      return;
    }
    this.pushedTask = '';
    this.requestTask({ request: msg.user_request ?? '', taskName: msg.task_name }).then(
      ({ sessionId }) => {
        // Its task_end may already have arrived in the same read as the ACK.
        if (this.pushedTask === '')
          this.pushedTask = this.taskEnds.hasUnclaimed(sessionId) ? null : sessionId;
        this.log.info({ sessionId, taskName: msg.task_name }, 'pushed task started');
      },
      (err: unknown) => {
        this.pushedTask = null;
        this.log.warn({ err, taskName: msg.task_name }, 'pushed task was refused');
      },
    );
  }
}
