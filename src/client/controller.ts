/**
 * A controller client: registers as a constellation (`client_type: "constellation"`), runs tasks on a
 * device and asks for its device info, like Galaxy does (ufo-aip.md §5.3, §6.4, §6.6, §12).
 */
import type { ClientMessageInput, ServerMessage } from '../../protocol/index.js';
import { AipClientBase, type BaseClientOptions, type TaskAck, type TaskRequest } from './client-base.js';

export interface ControllerClientOptions extends BaseClientOptions {
  /** The device this controller drives; sent as `target_id` at registration and on tasks. */
  targetId?: string | null;
}

export interface ControllerTaskRequest extends TaskRequest {
  /** Device to run on; default the controller's `targetId`. */
  targetId?: string | null;
  /** The task frame's `metadata` (e.g. `{ mode: 'batch_normal' }`); omitted when not given. */
  metadata?: Record<string, unknown> | null;
}

export interface RunTaskRequest extends ControllerTaskRequest {
  /** Limit on the wait for `task_end`; default none. */
  timeoutMs?: number;
}

/** How long `deviceInfo` waits by default (Galaxy's 10 s). */
export const DEVICE_INFO_TIMEOUT_MS = 10_000;

export class AipControllerClient extends AipClientBase {
  readonly targetId: string | null;
  private lastStamp = 0;

  constructor(opts: ControllerClientOptions) {
    super(opts, 'constellation');
    this.targetId = opts.targetId ?? null;
  }

  /** Sends `task` for a device; resolves with the ACK's session id, rejects on an `error` reply. */
  requestTask(req: ControllerTaskRequest): Promise<TaskAck> {
    return this.sendTask({
      type: 'task',
      status: 'continue',
      client_type: 'constellation',
      client_id: this.clientId,
      target_id: req.targetId ?? this.targetId,
      session_id: req.sessionId ?? null,
      task_name: req.taskName ?? null,
      request: req.request,
      ...(req.metadata ? { metadata: req.metadata } : {}),
    });
  }

  /** `task`, ACK, then the `task_end` frame (resolved whatever its status); rejects on an `error` reply. */
  async runTask(req: RunTaskRequest): Promise<ServerMessage> {
    const { sessionId } = await this.requestTask(req);
    return this.waitTaskEnd(sessionId, req.timeoutMs);
  }

  /**
   * `device_info_request` → the response's `result` object. When the server has no info it is
   * `{ error: "Device <id> not found or no system info available" }` (status still ok, as in UFO).
   * Rejects on an `error` reply (e.g. not authorised).
   */
  deviceInfo(targetId?: string | null, timeoutMs = DEVICE_INFO_TIMEOUT_MS): Promise<Record<string, unknown>> {
    const target = targetId ?? this.targetId;
    if (!target) return Promise.reject(new Error('deviceInfo needs a targetId'));
    if (!this.connected) return Promise.reject(new Error('Not connected; cannot send device_info_request'));
    const requestId = `device_info_${target}_${this.stamp()}`;
    const reply = this.requests.wait<Record<string, unknown>>(
      {
        what: `device_info_response ${requestId}`,
        match: (m) => {
          if (m.type !== 'device_info_response' || m.response_id !== requestId) return undefined;
          const r = m.result;
          return r !== null && typeof r === 'object' && !Array.isArray(r)
            ? (r as Record<string, unknown>)
            : { error: 'device_info_response carried no result object' };
        },
      },
      timeoutMs,
    );
    this.conn.send({
      type: 'device_info_request',
      status: 'ok',
      client_type: 'constellation',
      client_id: this.clientId,
      target_id: target,
      request_id: requestId,
      timestamp: new Date().toISOString(),
    });
    return reply;
  }

  protected registerMessage(): ClientMessageInput {
    return {
      type: 'register',
      status: 'ok',
      client_type: 'constellation',
      client_id: this.clientId,
      target_id: this.targetId,
      timestamp: new Date().toISOString(),
      metadata: {
        type: 'constellation_client',
        task_name: this.clientId.split('@')[0] ?? this.clientId,
        targeted_device_id: this.targetId,
        capabilities: ['task_distribution', 'session_management', 'device_coordination'],
        version: '2.0',
      },
    };
  }

  /** Galaxy's epoch-seconds stamp, made strictly increasing so request ids never repeat. */
  private stamp(): string {
    const now = Date.now() / 1000;
    this.lastStamp = now > this.lastStamp ? now : this.lastStamp + 0.000001;
    return this.lastStamp.toFixed(6);
  }
}
