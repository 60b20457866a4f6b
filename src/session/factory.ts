/**
 * SessionFactory: builds the session for a (mode, platform) pair (ufo-aip.md §9.5), and picks its agent.
 *
 * | mode                                                          | windows        | linux               | mobile               |
 * |---------------------------------------------------------------|----------------|---------------------|----------------------|
 * | service, normal, normal_operator, follower, batch_normal      | ServiceSession | LinuxServiceSession | MobileServiceSession |
 * | operator                                                      | ServiceSession | MODE_NOT_SUPPORTED  | MODE_NOT_SUPPORTED   |
 *
 * The mode is recorded on the session. An unknown platform → PLATFORM_NOT_SUPPORTED; an unknown or unsupported
 * mode → MODE_NOT_SUPPORTED listing the modes the platform supports.
 */
import type { Logger } from 'pino';
import { Platform, aipError } from '../../protocol/index.js';
import { AgentRegistry } from '../agents/registry.js';
import type { Session, SessionOptions } from './session.js';
import { LinuxServiceSession, MobileServiceSession, ServiceSession } from './service-sessions.js';
import { SESSION_MODES } from './types.js';
import type { Agent, AgentHooks, SessionMode, StatusChange } from './types.js';

const COMMON_MODES = [
  'normal',
  'normal_operator',
  'service',
  'follower',
  'batch_normal',
] as const satisfies readonly SessionMode[];

/** The modes each platform supports, in SESSION_MODES order. */
export const SUPPORTED_MODES: Readonly<Record<Platform, readonly SessionMode[]>> = {
  windows: SESSION_MODES,
  linux: COMMON_MODES,
  mobile: COMMON_MODES,
};

const SESSION_CLASS: Readonly<Record<Platform, new (o: SessionOptions) => Session>> = {
  windows: ServiceSession,
  linux: LinuxServiceSession,
  mobile: MobileServiceSession,
};

export interface SessionFactoryOptions {
  /** Picks the agent per task; by default a registry with only the `plan` agent. */
  agents?: AgentRegistry;
  logger?: Logger;
  /** Passed to every session (see SessionOptions.cancelGraceMs). */
  cancelGraceMs?: number;
}

export interface CreateSessionOptions {
  mode: string;
  platform: string;
  sessionId: string;
  taskName: string;
  request: string;
  /** Run this agent instead of the one the registry picks. */
  agent?: Agent;
  /** The target document (a plan's `object`); by default read from a plan in `request`. */
  target?: string | null;
  logger?: Logger;
  /** Told of every status change of the session. */
  onStatus?: (change: StatusChange) => void;
  /** Passed to the agent (see SessionOptions.hooks). */
  hooks?: AgentHooks;
}

export function isSupported(mode: string, platform: string): boolean {
  const p = Platform.safeParse(platform);
  return p.success && (SUPPORTED_MODES[p.data] as readonly string[]).includes(mode);
}

export class SessionFactory {
  readonly agents: AgentRegistry;
  private readonly logger: Logger | undefined;
  private readonly cancelGraceMs: number | undefined;

  constructor(options: SessionFactoryOptions = {}) {
    this.agents = options.agents ?? new AgentRegistry();
    this.logger = options.logger;
    this.cancelGraceMs = options.cancelGraceMs;
  }

  /** Builds a session. Throws AipError PLATFORM_NOT_SUPPORTED or MODE_NOT_SUPPORTED. */
  create(options: CreateSessionOptions): Session {
    const p = Platform.safeParse(options.platform);
    if (!p.success) throw aipError('PLATFORM_NOT_SUPPORTED', { platform: options.platform });
    const platform = p.data;
    const supported = SUPPORTED_MODES[platform];
    const mode = supported.find((m) => m === options.mode);
    if (mode === undefined) throw aipError('MODE_NOT_SUPPORTED', { mode: options.mode, platform, supported });
    const Cls = SESSION_CLASS[platform];
    const sessionOptions: SessionOptions = {
      sessionId: options.sessionId,
      taskName: options.taskName,
      request: options.request,
      mode,
      agent: options.agent ?? this.agents.select(options.request),
    };
    const logger = options.logger ?? this.logger;
    if (logger) sessionOptions.logger = logger;
    if (options.target !== undefined) sessionOptions.target = options.target;
    if (options.onStatus) sessionOptions.onStatus = options.onStatus;
    if (options.hooks) sessionOptions.hooks = options.hooks;
    if (this.cancelGraceMs !== undefined) sessionOptions.cancelGraceMs = this.cancelGraceMs;
    return new Cls(sessionOptions);
  }
}
