/**
 * The service session classes (ufo-aip.md §9.4), one per platform. They differ only in how a batch is routed
 * on the device when the agent leaves `agent_name`/`process_name`/`root_name` unset.
 */
import type { Platform } from '../../protocol/index.js';
import { Session } from './session.js';
import type { BatchRouting } from './session.js';

/** Office applications by document extension, as UFO's batch mode picks them (§9.5). */
export const APPLICATION_BY_EXTENSION: Readonly<Record<string, string>> = {
  '.docx': 'WINWORD.EXE',
  '.xlsx': 'EXCEL.EXE',
  '.pptx': 'POWERPNT.EXE',
};

/** The application (process and root name) for a target document, from its extension; null if unknown. */
export function applicationFor(target: string | null | undefined): string | null {
  if (!target) return null;
  const dot = target.lastIndexOf('.');
  if (dot < 0) return null;
  return APPLICATION_BY_EXTENSION[target.slice(dot).toLowerCase()] ?? null;
}

/**
 * Windows: the first batch of the task goes to `HostAgent` (which selects the application); every later
 * batch goes to `AppAgent` with process_name/root_name of the selected application, derived from the target
 * document's extension (null when unknown).
 */
export class ServiceSession extends Session {
  readonly platform: Platform = 'windows';

  protected routing(index: number): BatchRouting {
    if (index === 0) return { agent_name: 'HostAgent', process_name: null, root_name: null };
    const app = applicationFor(this.target);
    return { agent_name: 'AppAgent', process_name: app, root_name: app };
  }
}

/** Linux: a single `LinuxAgent`, no host agent. */
export class LinuxServiceSession extends Session {
  readonly platform: Platform = 'linux';

  protected routing(): BatchRouting {
    return { agent_name: 'LinuxAgent', process_name: null, root_name: null };
  }
}

/** Mobile: a single `MobileAgent`. */
export class MobileServiceSession extends Session {
  readonly platform: Platform = 'mobile';

  protected routing(): BatchRouting {
    return { agent_name: 'MobileAgent', process_name: null, root_name: null };
  }
}
