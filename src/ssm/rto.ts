/**
 * The retransmission timeout of the SSM data channel (Jacobson/Karels, as SSM's agent and plugin compute it):
 *
 *   RTTVAR = (1 − β)·RTTVAR + β·|RTT − sample|      β = 1/4
 *   RTT    = (1 − α)·RTT + α·sample                 α = 1/8
 *   RTO    = min(RTT + max(G, 4·RTTVAR), MAX_RTO)   G = 10 ms, MAX_RTO = 1 s
 *
 * starting from RTT 100 ms, RTTVAR 0, RTO 200 ms. A 140 ms first sample gives RTT 105, RTTVAR 10, RTO 145.
 */

export const RTO_INITIAL_RTT_MS = 100;
export const RTO_INITIAL_RTTVAR_MS = 0;
export const RTO_INITIAL_MS = 200;
export const RTO_ALPHA = 1 / 8;
export const RTO_BETA = 1 / 4;
export const RTO_CLOCK_GRANULARITY_MS = 10;
export const RTO_MAX_MS = 1000;

export class RtoEstimator {
  private rtt = RTO_INITIAL_RTT_MS;
  private rttVar = RTO_INITIAL_RTTVAR_MS;
  private rto = RTO_INITIAL_MS;

  get rttMs(): number {
    return this.rtt;
  }
  get rttVarMs(): number {
    return this.rttVar;
  }
  get rtoMs(): number {
    return this.rto;
  }

  /** One round-trip sample (ms, from a send to its ack). */
  sample(ms: number): void {
    const s = Math.max(0, ms);
    this.rttVar = (1 - RTO_BETA) * this.rttVar + RTO_BETA * Math.abs(this.rtt - s);
    this.rtt = (1 - RTO_ALPHA) * this.rtt + RTO_ALPHA * s;
    this.rto = Math.min(this.rtt + Math.max(RTO_CLOCK_GRANULARITY_MS, 4 * this.rttVar), RTO_MAX_MS);
  }
}
