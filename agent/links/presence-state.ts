// What the presence probes say about the peer, as a pure fold over probe results. The verdicts
// are kept apart because only 'dead' and 'unreachable' are evidence that the peer is gone;
// 'stalled' (its kernel accepts, its agent is silent) is a slow peer, never a gone one. A 'dead'
// verdict needs repeated evidence: an agent out of file descriptors has its kernel accept and
// drop a connection (libuv's EMFILE answer) exactly as a dying one does, once.
import type { LinkChange } from './public-link-state.ts';
import type { PresenceAnswer } from './presence-proof.ts';

/**
 * - alive: a valid, signed answer from the expected node.
 * - stalled: the TCP connection opened but no complete answer came in time.
 * - dead: the peer's host refused or reset the connection: the host is up, no agent holds the port.
 * - unreachable: the connection did not open in time, or the network said the host is unreachable.
 * - invalid: something answered, but not the expected agent with this pair key (or not a presence answer).
 * - error: this node could not make the probe (no socket, no name resolution): no evidence either way.
 */
export type PresenceVerdict = 'alive' | 'stalled' | 'dead' | 'unreachable' | 'invalid' | 'error';

/** 'unknown' before the first probe; 'unconfigured' when the peer has no public address. */
export type PresenceState = PresenceVerdict | 'unknown' | 'unconfigured';

export interface PresenceProbeResult {
  verdict: PresenceVerdict;
  /** Time from the connect call to the verdict. */
  latencyMs: number;
  /** Present when the verdict is 'alive'. */
  answer?: PresenceAnswer;
  /** Why, in words, when the verdict is not 'alive'. */
  error?: string;
  /** The error code of an 'invalid' verdict. */
  code?: 'TANDEM_ERR_AUTH_FAILED' | 'TANDEM_ERR_PEER_UNEXPECTED' | 'TANDEM_ERR_PROTOCOL';
}

export interface PresenceView {
  state: PresenceState;
  /** clock.now() when this state began. */
  since: number;
  /** The last valid answer, kept through later failures: "last seen at receivedAt, as active". */
  lastAnswer?: PresenceAnswer & { receivedAt: number };
  /** clock.now() when the last probe ended. */
  lastProbeAt?: number;
  /** Probes in a row that gave this state (0 for unknown and unconfigured). */
  consecutive: number;
  /** Why the last probe was not 'alive'. */
  error?: string;
  /** Probes in a row this node could not make ('error'), tolerated up to PRESENCE_ERRORS_TOLERATED. */
  errorsInRow?: number;
  /** 'dead' probes in a row not yet confirmed (fewer than PRESENCE_DEAD_CONFIRMATIONS), and when the first ended. */
  deadInRow?: number;
  deadSince?: number;
}

/**
 * A probe this node could not make says nothing about the peer: up to this many in a row leave
 * the verdict (and its `since`) as they were, so that one local hiccup does not restart the
 * failover's count. More than that, and the verdict becomes 'error': this node is blind.
 */
export const PRESENCE_ERRORS_TOLERATED = 3;

/**
 * Probes in a row that must find the peer's agent gone (refused, or closed without an answer)
 * before the verdict becomes 'dead'. One such probe proves little: an agent that ran out of
 * descriptors for a moment, a connection evicted by a flood of others (presence-server.ts),
 * a restart between accept and answer. With the default 500 ms interval three take about a
 * second, well inside the failover threshold; and how long the peer has been gone still counts
 * from the first of them (and from its last answer, failover-runner.ts), so confirming costs
 * the failover no time.
 */
export const PRESENCE_DEAD_CONFIRMATIONS = 3;

export function initialPresenceView(now: number, configured: boolean): PresenceView {
  return { state: configured ? 'unknown' : 'unconfigured', since: now, consecutive: 0 };
}

/** The view after one more probe that ended at `now`, and the state change, if any. */
export function applyPresenceResult(prev: PresenceView, r: PresenceProbeResult, now: number): { view: PresenceView; change?: LinkChange<PresenceState> } {
  const errorsInRow = r.verdict === 'error' ? (prev.errorsInRow ?? 0) + 1 : 0;
  if (r.verdict === 'error' && errorsInRow <= PRESENCE_ERRORS_TOLERATED && prev.state !== 'unknown' && prev.state !== 'unconfigured' && prev.state !== 'error') {
    return { view: { ...prev, lastProbeAt: now, errorsInRow, ...(r.error === undefined ? {} : { error: r.error }) } };
  }
  const same = r.verdict === prev.state;
  if (r.verdict === 'dead' && !same) {
    const deadInRow = (prev.deadInRow ?? 0) + 1;
    const deadSince = prev.deadSince ?? now;
    if (deadInRow < PRESENCE_DEAD_CONFIRMATIONS) {
      return { view: { ...prev, lastProbeAt: now, errorsInRow, deadInRow, deadSince, ...(r.error === undefined ? {} : { error: r.error }) } };
    }
    const view: PresenceView = { state: 'dead', since: deadSince, consecutive: deadInRow, lastProbeAt: now, errorsInRow };
    if (prev.lastAnswer !== undefined) view.lastAnswer = prev.lastAnswer;
    if (r.error !== undefined) view.error = r.error;
    return { view, change: { from: prev.state, to: 'dead', reason: r.error ?? 'the peer agent is gone' } };
  }
  const view: PresenceView = {
    state: r.verdict,
    since: same ? prev.since : now,
    consecutive: same ? prev.consecutive + 1 : 1,
    lastProbeAt: now,
    errorsInRow,
  };
  if (r.verdict === 'alive' && r.answer !== undefined) view.lastAnswer = { ...r.answer, receivedAt: now };
  else if (prev.lastAnswer !== undefined) view.lastAnswer = prev.lastAnswer;
  if (r.verdict !== 'alive' && r.error !== undefined) view.error = r.error;
  if (same) return { view };
  return { view, change: { from: prev.state, to: r.verdict, reason: r.error ?? 'the peer agent answered' } };
}
