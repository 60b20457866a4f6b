/**
 * The `/ws` upgrade gate: the `token` query parameter is checked against the API key in constant time (403
 * otherwise; the token is never logged), and the subprotocol offer picks the codec.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { HttpRequestHead } from '../transport/http.js';
import type { UpgradeDecision } from '../transport/transport.js';

export function upgradeGate(
  apiKey: string,
  pickProtocol: (offer: string | undefined) => string | null,
): (req: HttpRequestHead) => UpgradeDecision {
  const keyDigest = digest(apiKey);
  return (req) => {
    const token = new URLSearchParams(req.query).get('token');
    if (token === null || !timingSafeEqual(digest(token), keyDigest))
      return { accept: false, status: 403, body: 'Invalid or missing token' };
    return { accept: true, protocol: pickProtocol(req.headers['sec-websocket-protocol']) };
  };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
