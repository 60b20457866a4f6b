/**
 * The single-use token wait that both WebSocket paths of a session begin with (`/sessions/{id}/stream` and
 * `/sessions/{id}/ssm`): a timer for the frame that carries the token, and the caller's `onDecided` told exactly
 * once, however the wait ends — the token frame came, the socket closed, or the timer fired. (The endpoints count
 * sockets still waiting for a token against a limit, so a wait that ended without telling them would hold a slot
 * for good; each socket kept its own timer and flag before, and one of them once forgot the timer.)
 */
import type { StreamTokens } from './stream-tokens.js';

export class TokenGate {
  private timer: NodeJS.Timeout | null;
  private onDecided: (() => void) | null;

  constructor(waitMs: number, onTimeout: () => void, onDecided?: () => void) {
    this.onDecided = onDecided ?? null;
    this.timer = setTimeout(() => {
      this.decide();
      onTimeout();
    }, waitMs);
  }

  /** The wait is over (the token frame came, or the socket ended). Idempotent. */
  decide(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const told = this.onDecided;
    this.onDecided = null;
    told?.();
  }

  /** Ends the wait and redeems `token` for `sessionId` (single use): false when it is not a valid token. */
  redeem(tokens: StreamTokens, sessionId: string, token: unknown): boolean {
    this.decide();
    return tokens.redeem(sessionId, token);
  }
}
