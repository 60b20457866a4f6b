/**
 * The remote-execution sessions this node runs: typed sessions bound to one connected device (`interactive`,
 * `Standard_Stream`, `InteractiveCommands`, `Port`). Each is a durable record (SessionService) plus what lives
 * only here: its idle timer, its stream tokens, and whatever it has open (an execute call, stream sockets,
 * service listeners, channels). Ending a session, by DELETE, idle timeout, its stream ending or shutdown, closes
 * all of it, and the channel router resets its channels, which kills their processes on the device.
 */
import { randomUUID } from 'node:crypto';
import { AipError, aipError } from '../../protocol/index.js';
import type { ChannelEndpoint } from '../channel/endpoint.js';
import type { ChannelRouter } from '../channel/router.js';
import type { ChannelKind } from '../../protocol/channel.js';
import type { ServerConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { SessionService } from '../records/session-service.js';
import type { ClientDirectory, ClientInfo } from '../state/client-directory.js';
import type { JsonObject, SessionRecord, SessionStatus } from '../state/session-model.js';
import { isTerminalStatus } from '../state/session-model.js';
import { deviceCapabilities, type DeviceCapabilities } from './capabilities.js';
import { idleTimeoutOf, sessionType, type SessionTypeSpec } from './session-types.js';
import { StreamTokens } from './stream-tokens.js';

/** The server's receive window on file channels (bulk downloads); the router caps it at its maxWindow. */
export const FILE_RECEIVE_WINDOW = 1024 * 1024;

export interface CreateRemoteInput {
  readonly id?: string;
  readonly agent_id: string;
  readonly session_type: string;
  readonly parameters?: unknown;
  readonly context?: JsonObject;
}

export interface LiveRemote {
  readonly id: string;
  readonly type: SessionTypeSpec;
  readonly agentId: string;
  readonly params: Record<string, unknown>;
  readonly log: Logger;
  readonly idleMs: number;
  /** Things to close when the session ends (execute calls, stream sockets, listeners). */
  readonly closers: Set<() => void>;
  /** Operations under way; the idle timer does not fire while there are any. */
  busy: number;
  idleTimer: NodeJS.Timeout | null;
  /** The execute call running, if any (one at a time). */
  execution: { interrupt(): void } | null;
}

export class RemoteSessions {
  readonly tokens: StreamTokens;
  private readonly live = new Map<string, LiveRemote>();

  constructor(
    private readonly config: ServerConfig,
    private readonly sessions: SessionService,
    private readonly directory: ClientDirectory,
    private readonly channels: ChannelRouter,
    private readonly nodeId: string,
    private readonly log: Logger,
  ) {
    this.tokens = new StreamTokens(config.streamTokenTtlMs);
  }

  /** Live sessions on this node. */
  get size(): number {
    return this.live.size;
  }

  /** Whether session `id` is live on this node (what a stream or SSM socket must name to be taken). */
  isLive(id: string): boolean {
    return this.live.has(id);
  }

  /** The requester and executor of a live remote session, for the channel router (the server is the requester). */
  parties(sessionId: string): { requesterId: string; executorId: string } | null {
    const live = this.live.get(sessionId);
    return live ? { requesterId: '', executorId: live.agentId } : null;
  }

  /**
   * Creates a typed session: validates the type and its parameters, checks that the device is connected, and
   * writes the record (`active`, managed by this node). Throws an AipError (REMOTE_*, SESSION_EXISTS).
   */
  async create(
    input: CreateRemoteInput,
    spec: SessionTypeSpec,
  ): Promise<{ record: SessionRecord; live: LiveRemote }> {
    if (!spec.creatable)
      throw aipError('REMOTE_BAD_PARAMETERS', {
        type: spec.name,
        detail: 'task sessions are started by an AIP `task` frame or POST /api/dispatch, not POST /sessions',
      });
    const parsed = spec.parameters.safeParse(input.parameters ?? {});
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      const where = i.path.length ? `parameters.${i.path.join('.')}` : 'parameters';
      throw aipError('REMOTE_BAD_PARAMETERS', { type: spec.name, detail: `${where}: ${i.message}` });
    }
    const device = await this.device(input.agent_id);
    const params = parsed.data;
    const id = input.id ?? randomUUID();
    const base = this.sessions.recordFrom(
      {
        agent_id: input.agent_id,
        session_type: spec.name,
        context: input.context ?? {},
        runtime_backend: 'local',
        runtime_metadata: { parameters: params, node: this.nodeId, platform: device.platform },
      },
      id,
    );
    const record: SessionRecord = { ...base, managed_by: this.nodeId };
    if (this.live.has(id)) throw aipError('SESSION_EXISTS', { id });
    await this.sessions.create(record, {
      agent_id: record.agent_id,
      session_type: spec.name,
      parameters: params,
    });
    const live: LiveRemote = {
      id,
      type: spec,
      agentId: input.agent_id,
      params,
      log: this.log.child({ session_id: id, agent_id: input.agent_id }),
      idleMs: idleTimeoutOf(params) ?? this.config.remoteIdleTimeoutMs,
      closers: new Set(),
      busy: 0,
      idleTimer: null,
      execution: null,
    };
    this.live.set(id, live);
    this.touch(live);
    live.log.info({ session_type: spec.name }, 'remote session started');
    return { record, live };
  }

  /**
   * The live session `id`, or the error to answer with: not found (404), or not live here (409, with its status).
   */
  async get(id: string): Promise<LiveRemote> {
    const live = this.live.get(id);
    if (live) return live;
    const rec = await this.sessions.get(id);
    if (!rec) throw aipError('HTTP_SESSION_NOT_FOUND');
    if (!sessionType(rec.session_type) || rec.session_type === 'task')
      throw aipError('REMOTE_UNSUPPORTED', { sid: id, type: rec.session_type, op: 'remote execution' });
    throw aipError('REMOTE_NOT_LIVE', {
      sid: id,
      status: rec.status === 'active' ? 'not running on this node' : rec.status,
    });
  }

  /** What the session's device serves (from its registration); throws when the device is not connected. */
  capabilities(live: LiveRemote): DeviceCapabilities {
    const info = this.directory.get(live.agentId);
    if (!info) throw aipError('REMOTE_DEVICE_OFFLINE', { id: live.agentId });
    return deviceCapabilities(info);
  }

  /** Opens a data channel to the session's device, after checking that it serves `kind`. */
  async openChannel(
    live: LiveRemote,
    kind: ChannelKind,
    params: Record<string, unknown>,
    /** Aborted before the device answers the OPEN: the open fails (CHANNEL_CANCELLED). */
    signal?: AbortSignal,
  ): Promise<ChannelEndpoint> {
    const caps = this.capabilities(live);
    if (!caps.channels.includes(kind))
      throw aipError('REMOTE_DEVICE_CANNOT', { id: live.agentId, what: `${kind} channels` });
    return this.channels.openLocal({
      sessionId: live.id,
      party: 'executor',
      kind,
      params,
      ...(kind === 'file' ? { receiveWindow: FILE_RECEIVE_WINDOW } : {}),
      ...(signal ? { signal } : {}),
    });
  }

  /** Marks an operation under way until the returned function is called (the idle timer waits for it). */
  hold(live: LiveRemote): () => void {
    live.busy++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      live.busy--;
      this.touch(live);
    };
  }

  /** Something happened in the session: its idle timer starts again. */
  touch(live: LiveRemote): void {
    if (!this.live.has(live.id)) return;
    if (live.idleTimer) clearTimeout(live.idleTimer);
    live.idleTimer = setTimeout(() => {
      live.idleTimer = null;
      if (live.busy > 0) return this.touch(live);
      void this.end(live.id, 'cancelled', `idle timeout: no activity for ${live.idleMs} ms`).catch(
        (err: unknown) => live.log.error({ err }, 'ending an idle session failed'),
      );
    }, live.idleMs);
    live.idleTimer.unref();
  }

  /** Records an event in the session's log (not awaited by callers on the data path). */
  record(live: LiveRemote | string, type: string, data: JsonObject): void {
    const id = typeof live === 'string' ? live : live.id;
    this.sessions
      .appendEvents([this.sessions.event(id, type, data)])
      .catch((err: unknown) =>
        this.log.warn({ err, session_id: id, type }, 'could not record a session event'),
      );
  }

  /**
   * Ends a live session: closes everything it opened, resets its channels, and sets its final status (when the
   * record still allows it). False when it was not live here.
   */
  async end(id: string, status: SessionStatus, reason: string): Promise<boolean> {
    const live = this.live.get(id);
    if (!live) return false;
    this.live.delete(id);
    if (live.idleTimer) clearTimeout(live.idleTimer);
    this.tokens.revoke(id);
    for (const close of [...live.closers]) {
      try {
        close();
      } catch (err) {
        live.log.warn({ err }, 'closing a session resource failed');
      }
    }
    live.closers.clear();
    this.channels.onSessionEnded(id);
    live.log.info({ status, reason }, 'remote session ended');
    try {
      await this.sessions.write(id, (cur) =>
        isTerminalStatus(cur.status) || cur.status === status
          ? { changes: {}, type: 'session.closed', data: { reason } }
          : { changes: this.sessions.statusChange(cur, status, reason), data: { updates: ['status'] } },
      );
    } catch (err) {
      if (!(err instanceof AipError && err.kind === 'HTTP_SESSION_NOT_FOUND')) throw err;
    }
    return true;
  }

  /** Ends every live session (server shutdown). */
  async shutdown(): Promise<void> {
    await Promise.allSettled([...this.live.keys()].map((id) => this.end(id, 'cancelled', 'server shutdown')));
  }

  /** The connected device `id`, or the error that says why it cannot be used. */
  private async device(id: string): Promise<ClientInfo> {
    const info = this.directory.get(id);
    if (info?.clientType === 'constellation') throw aipError('REMOTE_NOT_A_DEVICE', { id });
    if (info) return info;
    const seen = await this.sessions.list({ agent_id: id }, { limit: 1, cursor: null });
    throw seen.items.length > 0
      ? aipError('REMOTE_DEVICE_OFFLINE', { id })
      : aipError('REMOTE_UNKNOWN_DEVICE', { id });
  }
}
