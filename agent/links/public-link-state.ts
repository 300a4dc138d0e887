// This node's view of the public network as a pure state machine over rounds of checks: no
// socket, no timer, times passed in. One failed round is never a failure: only `threshold`
// consecutive failed rounds make the link 'failing', and the first answered round ends it.

export type PublicLinkState = 'unknown' | 'ok' | 'failing';

/** One target as the last round saw it. `ok: null` means not checked (unavailable here). */
export interface PublicTargetView {
  url: string;
  ok: boolean | null;
  latencyMs?: number;
  error?: string;
}

export interface PublicLinkView {
  /**
   * 'unknown' until a round is answered or `threshold` rounds failed: a node that has just
   * started and lost its first probe knows nothing yet, it is neither ok nor failing.
   */
  state: PublicLinkState;
  /** clock.now() when `state` last changed. */
  since: number;
  /** False when no usable target is configured: the node cannot tell that it is isolated. */
  checked: boolean;
  consecutiveFailures: number;
  /**
   * While rounds fail: the end of the last answered round, the last moment the network was
   * known to be there. An isolated active counts its isolation from here, not from the moment
   * `threshold` rounds made it certain, so that it stops serving before its peer may start.
   */
  failingSince: number | undefined;
  targets: PublicTargetView[];
  /** clock.now() when the last round ended. */
  lastRoundAt: number | undefined;
}

/** The result of one round: every target, usable or not, in configuration order. */
export interface PublicRound {
  /** clock.now() when the round ended. */
  at: number;
  /** False when no target could be checked at all (none configured, or all unavailable). */
  checked: boolean;
  targets: PublicTargetView[];
}

/** The event every state change emits (logs, status and the failover decision read it). */
export interface LinkChange<S extends string> {
  from: S;
  to: S;
  reason: string;
}

/** Before the first round: 'unknown', or at once 'ok' unchecked when there is nothing to check. */
export function initialPublicLinkView(now: number, targets: readonly { url: string }[]): PublicLinkView {
  const checked = targets.length > 0;
  return {
    state: checked ? 'unknown' : 'ok',
    since: now,
    checked,
    consecutiveFailures: 0,
    failingSince: undefined,
    targets: targets.map((t) => ({ url: t.url, ok: null })),
    lastRoundAt: undefined,
  };
}

/** The view after one more round, and the state change it caused, if any. */
export function applyPublicRound(prev: PublicLinkView, round: PublicRound, threshold: number): { view: PublicLinkView; change?: LinkChange<PublicLinkState> } {
  let state: PublicLinkState;
  let consecutiveFailures: number;
  let reason: string;
  if (!round.checked) {
    // Nothing to check with: counting that as a failure would demote a node for a missing
    // setting, counting it as a success is what docs/configuration.md promises. `checked`
    // tells the difference.
    state = 'ok';
    consecutiveFailures = 0;
    reason = 'no usable public check target: the link counts as up, unchecked';
  } else if (round.targets.some((t) => t.ok === true)) {
    state = 'ok';
    consecutiveFailures = 0;
    reason = prev.state === 'failing' ? 'a target answered again' : 'a target answered';
  } else {
    consecutiveFailures = prev.consecutiveFailures + 1;
    state = consecutiveFailures >= threshold ? 'failing' : prev.state;
    reason = `${consecutiveFailures} consecutive rounds without an answer from any target (threshold ${threshold})`;
  }
  const view: PublicLinkView = {
    state,
    since: state === prev.state ? prev.since : round.at,
    checked: round.checked,
    consecutiveFailures,
    failingSince: consecutiveFailures === 0 ? undefined : consecutiveFailures === 1 ? (prev.lastRoundAt ?? round.at) : (prev.failingSince ?? round.at),
    targets: round.targets,
    lastRoundAt: round.at,
  };
  if (state === prev.state && round.checked === prev.checked) return { view };
  return { view, change: { from: prev.state, to: state, reason } };
}
