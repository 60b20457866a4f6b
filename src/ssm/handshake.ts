/**
 * The data channel's handshake payloads (docs/ssm.md), and the agent-version rules the plugin applies to them:
 *
 *   server → plugin  out#0 HandshakeRequest (PayloadType 5): AgentVersion + the SessionType action
 *   plugin → server  in#0  HandshakeResponse (PayloadType 6): the action's status
 *   server → plugin  out#1 HandshakeComplete (PayloadType 7)
 *
 * KMS encryption is never requested. Properties are all strings (a number would drop the plugin into stdio
 * forwarding). For a Port session the plugin picks smux multiplexing when AgentVersion > 3.0.196.0 and turns smux
 * keepalive off when it is > 3.1.1511.0.
 */

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The SessionType values the plugin knows. */
export type SsmSessionType = 'Standard_Stream' | 'InteractiveCommands' | 'Port';

export const MUX_SINCE_AGENT = '3.0.196.0';
export const NO_KEEPALIVE_SINCE_AGENT = '3.1.1511.0';

/** How the plugin will forward a Port session, given the agent version and the `type` property. */
export type PortMode = 'stdio' | 'basic' | 'mux';

export interface HandshakePlan {
  readonly agentVersion: string;
  readonly sessionType: SsmSessionType;
  readonly properties: Readonly<Record<string, string>>;
}

export function handshakeRequestPayload(plan: HandshakePlan): Uint8Array {
  return enc.encode(
    JSON.stringify({
      AgentVersion: plan.agentVersion,
      RequestedClientActions: [
        {
          ActionType: 'SessionType',
          ActionParameters: { SessionType: plan.sessionType, Properties: plan.properties },
        },
      ],
    }),
  );
}

export function handshakeCompletePayload(elapsedMs: number, customerMessage = ''): Uint8Array {
  return enc.encode(
    JSON.stringify({
      HandshakeTimeToComplete: Math.max(0, Math.round(elapsedMs * 1e6)),
      CustomerMessage: customerMessage,
    }),
  );
}

/** The plugin's answer: ok when its SessionType action succeeded, else why not. */
export function parseHandshakeResponse(payload: Uint8Array): { ok: true } | { ok: false; reason: string } {
  let j: unknown;
  try {
    j = payload.byteLength <= 64 * 1024 ? JSON.parse(dec.decode(payload)) : null;
  } catch {
    j = null;
  }
  if (j === null || typeof j !== 'object') return { ok: false, reason: 'the handshake response is not JSON' };
  const actions = (j as { ProcessedClientActions?: unknown }).ProcessedClientActions;
  const st = Array.isArray(actions)
    ? (actions as Record<string, unknown>[]).find((a) => a?.ActionType === 'SessionType')
    : undefined;
  if (!st) return { ok: false, reason: 'the client did not process the SessionType action' };
  if (st.ActionStatus !== 1)
    return {
      ok: false,
      reason: `the client refused the session type (status ${String(st.ActionStatus)}${
        typeof st.Error === 'string' && st.Error ? `: ${st.Error}` : ''
      })`,
    };
  return { ok: true };
}

/** Whether `a` > `b` for 4-part dotted versions, as the plugin compares (unparsable or mismatched: false). */
export function versionGreater(a: string, b: string): boolean {
  const pa = a.split('.');
  const pb = b.split('.');
  if (pa.length !== pb.length || ![...pa, ...pb].every((p) => /^\d+$/.test(p))) return false;
  for (let i = 0; i < pa.length; i++) {
    const d = Number(pa[i]) - Number(pb[i]);
    if (d !== 0) return d > 0;
  }
  return false;
}

export function portMode(agentVersion: string, forwardingType: string): PortMode {
  if (forwardingType !== 'LocalPortForwarding') return 'stdio';
  return versionGreater(agentVersion, MUX_SINCE_AGENT) ? 'mux' : 'basic';
}

/** Whether the plugin's smux client runs keepalives (then the server must send something every < 30 s). */
export function smuxKeepalive(agentVersion: string): boolean {
  return !versionGreater(agentVersion, NO_KEEPALIVE_SINCE_AGENT);
}

/** An OpenDataChannelInput text frame: its token and client id, or null when it is not one. */
export function parseOpenDataChannel(bytes: Uint8Array): { token: string; clientId: string } | null {
  if (bytes.byteLength > 16 * 1024) return null;
  try {
    const j = JSON.parse(dec.decode(bytes)) as Record<string, unknown>;
    if (typeof j?.TokenValue !== 'string') return null;
    return { token: j.TokenValue, clientId: typeof j.ClientId === 'string' ? j.ClientId.slice(0, 128) : '' };
  } catch {
    return null;
  }
}

/** A Size payload ({"cols","rows"}), clamped to 1–1000; null when it is not one. */
export function parseSize(payload: Uint8Array): { rows: number; cols: number } | null {
  if (payload.byteLength > 1024) return null;
  try {
    const j = JSON.parse(dec.decode(payload)) as { cols?: unknown; rows?: unknown };
    const ok = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1;
    if (!ok(j.cols) || !ok(j.rows)) return null;
    return { rows: Math.min(j.rows, 1000), cols: Math.min(j.cols, 1000) };
  } catch {
    return null;
  }
}
