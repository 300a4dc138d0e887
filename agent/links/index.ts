// The link monitors: this node's own view of the public network (public checks) and whether the
// peer's agent answers on it (presence). They report what they saw and never decide a failover;
// they must never call one lost probe a failure, nor report a stalled peer as gone.
export { PublicChecker, PROBE_GRACE_MS } from './public-checker.ts';
export type { PublicCheckerOptions, PublicChangeListener } from './public-checker.ts';
export { applyPublicRound, initialPublicLinkView } from './public-link-state.ts';
export type { LinkChange, PublicLinkState, PublicLinkView, PublicRound, PublicTargetView } from './public-link-state.ts';
export { probeTarget, HTTP_CHECK_MAX_BODY_BYTES } from './target-probe.ts';
export type { ProbeTargetOptions, TargetOutcome, TargetProbe } from './target-probe.ts';
export { PresenceServer, PRESENCE_LISTEN_BACKLOG } from './presence-server.ts';
export type { PresenceServerOptions } from './presence-server.ts';
export { PresenceProber } from './presence-prober.ts';
export type { PresenceChangeListener, PresenceProberOptions } from './presence-prober.ts';
export { probePresence } from './presence-probe.ts';
export type { PresenceConnect, PresenceProbeOptions } from './presence-probe.ts';
export { applyPresenceResult, initialPresenceView } from './presence-state.ts';
export type { PresenceProbeResult, PresenceState, PresenceVerdict, PresenceView } from './presence-state.ts';
export { checkPresenceBody, derivePresenceKey, presenceProof, PRESENCE_PATH } from './presence-proof.ts';
export type { PresenceAnswer, PresenceCheck } from './presence-proof.ts';
