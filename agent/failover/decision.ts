// The failover decision: a pure state machine. Given what the links observed and what the
// runner reported, it says what this node must do about its role. It never touches a socket,
// a script or the clock: time comes in the input. DESIGN.md "Roles, links and the failover
// decision" is the specification; docs/failover.md explains each rule to operators.
//
// Rules, in the order of the invariants:
//  1. Never two active nodes. A node serves only while it can justify it; an active that is
//     isolated (channel down, own public checks failing) stops after demoteThreshold intervals,
//     before its peer may start after threshold intervals. A node that meets an active peer
//     with a higher epoch yields at once. A restarted node does not serve until it has heard
//     its peer or waited out the failover threshold.
//  2. Never lose replicated data: a passive that was behind beyond maxLagOnFailover (or in the
//     middle of a synchronisation) refuses to take over unless allowDataLoss.
//  3. Take over only when the active is really gone: channel down AND its presence probe
//     refused or unreachable, for threshold intervals. A stalled agent (connects, never
//     answers) or one lost link is not a failure. A passive whose own public checks fail
//     never promotes (it may be the isolated one).
//  4. Damping: at most maxRoleChangesPerHour automatic role changes, then hold and alarm.
//  5. Maintenance (an operator's hold): no automatic role change while it is on; what an
//     operator asks still happens, and rule 1 still holds (an isolated active steps down, a
//     node that meets a newer active yields), because a peer not held may take over.
//
// Every reason comes with a trigger (automatic, operator, planned): the text is for people,
// the trigger is what code compares (damping counts only automatic changes).
import type { Role } from '../../shared/protocol/index.ts';

/**
 * What set a role change in motion: this node's own decision (`automatic`), a person's command
 * to this node (`operator`), or the taking half of a drained handover its peer began (`planned`).
 */
export type Trigger = 'automatic' | 'operator' | 'planned';

export type PublicState = 'unknown' | 'ok' | 'failing';
export type PresenceState = 'unknown' | 'unconfigured' | 'alive' | 'stalled' | 'dead' | 'unreachable' | 'invalid';

/** What the peer said of itself in its last heartbeat (while the channel was up). */
export interface PeerView {
  role: Role;
  epoch: number;
  serving: boolean;
  publicState: PublicState;
  /** Passive peer: whether it had applied everything the active journaled. */
  inSync: boolean;
  at: number;
  /** The last epoch in which the peer was active (from its heartbeats; unknown until one came). */
  activeEpoch?: number | undefined;
}

export interface Observations {
  /** Up while a connection is open and the peer's heartbeats arrive within interval × threshold. */
  channel: { up: boolean; since: number };
  peer: PeerView | undefined;
  /** `since`, while failing: the last moment the public network answered (not when the threshold was reached). */
  ownPublic: { state: PublicState; since: number; checked: boolean };
  presence: { state: PresenceState; since: number; answer?: { role: Role; epoch: number; serving: boolean } | undefined };
  /**
   * Passive: how far behind it was when it last heard from the active, and whether it is
   * mid-synchronisation. Active: how far behind its passive is now, and whether it is
   * synchronising it.
   */
  replication: { lagMs: number | undefined; syncing: boolean };
}

export interface DecisionConfig {
  intervalMs: number;
  threshold: number;
  demoteThreshold: number;
  auto: boolean;
  maxLagOnFailoverMs: number;
  allowDataLoss: boolean;
  autoFailback: boolean;
  maxRoleChangesPerHour: number;
  /** This node is the one configured active: with autoFailback, the role returns to it. */
  preferred: boolean;
}

export type Phase =
  /** Just started: not serving until the peer is heard or the failover threshold passed. */
  | 'starting'
  | 'steady'
  /** An action is running in the runner; its outcome comes back as a `done` input. */
  | 'busy';

export type Action = 'serve' | 'promote' | 'demote' | 'switchover' | 'release';

export interface Alarm {
  message: string;
  since: number;
}

export interface DecisionState {
  role: Role;
  epoch: number;
  phase: Phase;
  /** The start script succeeded and no stop ran since: this node holds the public identity. */
  serving: boolean;
  startedAt: number;
  /** The action the runner is performing while phase is 'busy'. */
  pending: Action | undefined;
  /** Times of automatic role changes, for damping. */
  roleChanges: number[];
  /** Active conditions worth an operator's attention, by error code. */
  alarms: Record<string, Alarm>;
  /** Why the node is in its current role (for status). */
  reason: string;
  /** What set `reason` in motion. */
  trigger: Trigger;
  /** An operator's maintenance hold: no automatic role change while true (rule 5). */
  maintenance: boolean;
  /** After a failed start, the next attempt waits until then (no script storm). */
  retryServeAt: number;
  /** After a failed fence, the next takeover (and its fence) waits until then. */
  fenceRetryAt?: number;
  /** The highest epoch the peer ever showed: a promotion goes beyond it. */
  peerEpoch: number;
  /** The last epoch in which this node was active (0: never): the newest data of two passives. */
  activeEpoch: number;
  /** Since when both nodes are passive with the channel up (nobody serves). */
  bothPassiveSince: number | undefined;
  /**
   * A request that arrived while an action ran, carried out when it ends: a takeover the
   * active sent while this node was still finishing its own step-down, or a split-brain
   * resolution for the peer's side. Dropping them would leave the pair waiting on a timeout.
   */
  queued?: { kind: 'takeover'; epoch: number } | { kind: 'keep-peer'; reason: string; operator: boolean } | undefined;
}

export type Input =
  | { kind: 'tick'; now: number; obs: Observations }
  /**
   * The runner finished an action. For 'promote' `epoch` is the new generation's epoch;
   * `fenceFailed`: the fence script failed, so nothing was promoted (the node is still passive).
   */
  | { kind: 'done'; now: number; action: Action; ok: boolean; error?: string | undefined; epoch?: number; serving?: boolean; fenceFailed?: boolean }
  /** An operator asked for a switchover (tandem switchover). */
  | { kind: 'operator-switchover'; now: number }
  /** The application monitor gave up restarting the application locally. */
  | { kind: 'app-failed'; now: number; reason: string }
  /** The active peer hands its role over (planned switchover): take it. */
  | { kind: 'takeover'; now: number; epoch: number }
  /**
   * A split brain was resolved for the peer's side (tandem resolve, or a policy): hand the role
   * over without draining; this node's changes since the split are overwritten afterwards.
   */
  | { kind: 'keep-peer'; now: number; reason: string; operator: boolean }
  /** tandem maintenance on|off: hold (or release) every automatic role change. */
  | { kind: 'maintenance'; now: number; on: boolean }
  /**
   * tandem failover --force, on a passive: the operator vouches that the active is gone. Taken
   * only while nothing of the peer answers (`obs`, observed when asked).
   */
  | { kind: 'operator-failover'; now: number; obs: Observations };

export type Effect =
  /** Run `start` and hold the public identity (the role is already active). */
  | { kind: 'serve'; reason: string }
  /**
   * Passive → active: finish applying what is held, new epoch, active engines, `start`. `fence`:
   * the peer is taken for gone without its word, so the fence script (when configured) runs first.
   */
  | { kind: 'promote'; reason: string; epoch: number; fence?: boolean }
  /** Active → passive: `stop`, passive engines. */
  | { kind: 'demote'; reason: string }
  /** Planned handover to the peer: stop, drain (unless `discardOwn`), hand over, become passive. */
  | { kind: 'switchover'; reason: string; discardOwn?: boolean }
  /** Not active and yet serving (e.g. a stale start): run `stop`. */
  | { kind: 'release'; reason: string };

export interface StepResult {
  state: DecisionState;
  effects: Effect[];
  /** An operator's request that was not taken, and why (nothing changed). */
  refused?: string;
}

export const HOUR_MS = 3_600_000;

export function initialState(role: Role, epoch: number, now: number, activeEpoch = role === 'active' ? epoch : 0, maintenance = false): DecisionState {
  return { role, epoch, phase: 'starting', serving: false, startedAt: now, pending: undefined, roleChanges: [], alarms: {}, reason: 'starting', trigger: 'automatic', maintenance, retryServeAt: 0, peerEpoch: 0, activeEpoch, bothPassiveSince: undefined };
}

/** The reason (and what triggered it) of the node's current role or action. */
function because(s: DecisionState, reason: string, trigger: Trigger = 'automatic'): DecisionState {
  return { ...s, reason, trigger };
}

/** Appended to refusals while maintenance holds an automatic role change. */
const HELD = 'maintenance mode is on (tandem maintenance off -c CONFIG ends it)';

function withAlarm(s: DecisionState, code: string, message: string, now: number): DecisionState {
  const cur = s.alarms[code];
  if (cur !== undefined && cur.message === message) return s;
  return { ...s, alarms: { ...s.alarms, [code]: { message, since: cur?.since ?? now } } };
}

function withoutAlarm(s: DecisionState, ...codes: string[]): DecisionState {
  if (!codes.some((c) => c in s.alarms)) return s;
  const alarms = { ...s.alarms };
  for (const c of codes) delete alarms[c];
  return { ...s, alarms };
}

function busy(s: DecisionState, action: Action, effect: Effect): StepResult {
  return { state: { ...s, phase: 'busy', pending: action }, effects: [effect] };
}

/** Automatic role changes still counted at `now`. */
function recentChanges(s: DecisionState, now: number): number[] {
  return s.roleChanges.filter((t) => now - t < HOUR_MS);
}

function damped(s: DecisionState, cfg: DecisionConfig, now: number): boolean {
  return recentChanges(s, now).length >= cfg.maxRoleChangesPerHour;
}

export function step(s: DecisionState, input: Input, cfg: DecisionConfig): StepResult {
  switch (input.kind) {
    case 'done': {
      const r = onDone(s, input, cfg);
      const q = r.state.queued;
      if (q === undefined || r.state.phase === 'busy' || r.effects.length > 0) return r;
      return step({ ...r.state, queued: undefined }, q.kind === 'takeover' ? { kind: 'takeover', now: input.now, epoch: q.epoch } : { kind: 'keep-peer', now: input.now, reason: q.reason, operator: q.operator }, cfg);
    }
    case 'takeover':
      if (s.phase === 'busy') return { state: { ...s, queued: { kind: 'takeover', epoch: input.epoch } }, effects: [] };
      if (s.role !== 'passive') return { state: s, effects: [] };
      return busy(because(s, 'planned switchover', 'planned'), 'promote', { kind: 'promote', reason: 'planned switchover: the active handed over', epoch: Math.max(s.epoch, input.epoch) });
    case 'keep-peer': {
      if (s.phase === 'busy') return { state: { ...s, queued: { kind: 'keep-peer', reason: input.reason, operator: input.operator } }, effects: [] };
      if (s.role !== 'active') return { state: s, effects: [] };
      // An operator's word is not an automatic role change (damping counts only those).
      const reason = input.operator ? `operator resolved a split brain: ${input.reason}` : input.reason;
      if (!input.operator && !cfg.auto) {
        return { state: withAlarm(s, 'TANDEM_ERR_FAILOVER_REFUSED', `${input.reason}; not handing over by itself: failover.auto is off (tandem resolve --keep decides)`, input.now), effects: [] };
      }
      if (!input.operator && damped(s, cfg, input.now)) {
        return { state: withAlarm(s, 'TANDEM_ERR_FAILOVER_REFUSED', `${input.reason}; not handing over: ${cfg.maxRoleChangesPerHour} automatic role changes in the last hour (failover.maxRoleChangesPerHour)`, input.now), effects: [] };
      }
      if (!input.operator && s.maintenance) {
        return { state: withAlarm(s, 'TANDEM_ERR_FAILOVER_REFUSED', `${input.reason}; not handing over by itself: ${HELD}`, input.now), effects: [] };
      }
      return busy(because(s, reason, input.operator ? 'operator' : 'automatic'), 'switchover', { kind: 'switchover', reason, discardOwn: true });
    }
    case 'maintenance': {
      if (s.maintenance === input.on) return { state: s, effects: [] };
      // Holds lifted: refusals that only maintenance explained are found again at the next tick.
      return { state: { ...s, maintenance: input.on }, effects: [] };
    }
    case 'operator-failover':
      return forcedFailover(s, input.now, input.obs);
    case 'operator-switchover':
    case 'app-failed': {
      if (s.role !== 'active' || s.phase === 'busy') return { state: s, effects: [] };
      const reason = input.kind === 'app-failed' ? `application failed: ${input.reason}` : 'operator asked for a switchover';
      if (input.kind === 'app-failed' && damped(s, cfg, input.now)) {
        // Its own code, so that the public-link rules (which clear FAILOVER_REFUSED) leave it:
        // it stays until a role change or a successful start.
        return { state: withAlarm(s, 'TANDEM_ERR_SCRIPT_FAILED', `${reason}; not switching over: ${cfg.maxRoleChangesPerHour} automatic role changes in the last hour (failover.maxRoleChangesPerHour); monitoring goes on`, input.now), effects: [] };
      }
      if (input.kind === 'app-failed' && s.maintenance) {
        return { state: withAlarm(s, 'TANDEM_ERR_SCRIPT_FAILED', `${reason}; not switching over: ${HELD}`, input.now), effects: [] };
      }
      // The trigger stays in the state: onDone counts only automatic role changes for damping.
      return busy(because(s, reason, input.kind === 'app-failed' ? 'automatic' : 'operator'), 'switchover', { kind: 'switchover', reason });
    }
    case 'tick': {
      const seen = Math.max(input.obs.peer?.epoch ?? 0, input.obs.presence.state === 'alive' ? (input.obs.presence.answer?.epoch ?? 0) : 0);
      const n = seen > s.peerEpoch ? { ...s, peerEpoch: seen } : s;
      return n.phase === 'busy' ? { state: n, effects: [] } : onTick(n, input.now, input.obs, cfg);
    }
  }
}

function onDone(s: DecisionState, d: Extract<Input, { kind: 'done' }>, cfg: DecisionConfig): StepResult {
  const now = d.now;
  let n: DecisionState = { ...s, phase: 'steady', pending: undefined };
  const automatic = n.trigger === 'automatic';
  switch (d.action) {
    case 'serve':
      if (d.ok) return { state: withoutAlarm({ ...n, serving: true }, 'TANDEM_ERR_FAILOVER_FAILED', 'TANDEM_ERR_SCRIPT_FAILED'), effects: [] };
      return { state: withAlarm({ ...n, retryServeAt: now + retryDelay(cfg) }, 'TANDEM_ERR_FAILOVER_FAILED', `the start script failed: ${d.error ?? 'no detail'}; not serving`, now), effects: [] };
    case 'promote':
      // The fence failed: nothing was promoted. Retry later, fence first again (Pacemaker's rule:
      // no resource starts while the peer may still run it).
      if (d.fenceFailed === true) {
        return { state: withAlarm({ ...n, fenceRetryAt: now + retryDelay(cfg) }, 'TANDEM_ERR_FENCE_FAILED', `the fence script failed: ${d.error ?? 'no detail'}; not taking over until a fence succeeds`, now), effects: [] };
      }
      // A planned takeover was counted (if automatic) by the active that handed over; an
      // operator's forced failover is not automatic either.
      n = { ...n, role: 'active', epoch: d.epoch ?? n.epoch + 1, activeEpoch: d.epoch ?? n.epoch + 1, bothPassiveSince: undefined, roleChanges: automatic ? [...recentChanges(n, now), now] : n.roleChanges };
      n = withoutAlarm(n, 'TANDEM_ERR_FENCE_FAILED');
      if (d.ok) return { state: withoutAlarm({ ...n, serving: true }, 'TANDEM_ERR_FAILOVER_FAILED', 'TANDEM_ERR_FAILOVER_REFUSED'), effects: [] };
      // Active without serving: the failed start was retried already; say so and try again
      // at a later tick (the role stays: the old active is gone, nobody else may serve).
      return { state: withAlarm({ ...n, serving: false, retryServeAt: now + retryDelay(cfg) }, 'TANDEM_ERR_FAILOVER_FAILED', `failover: the start script failed: ${d.error ?? 'no detail'}; the pair is not serving`, now), effects: [] };
    case 'demote':
      n = { ...n, role: 'passive', serving: false, roleChanges: automatic ? [...recentChanges(n, now), now] : n.roleChanges };
      return { state: d.ok ? n : withAlarm(n, 'TANDEM_ERR_SCRIPT_FAILED', `the stop script failed while stepping down: ${d.error ?? 'no detail'}`, now), effects: [] };
    case 'release':
      if (d.ok) return { state: withoutAlarm({ ...n, serving: false }, 'TANDEM_ERR_SCRIPT_FAILED'), effects: [] };
      // Tried again, but not on every tick.
      return { state: withAlarm({ ...n, retryServeAt: now + retryDelay(cfg) }, 'TANDEM_ERR_SCRIPT_FAILED', `the stop script failed: ${d.error ?? 'no detail'}; still trying`, now), effects: [] };
    case 'switchover':
      if (d.ok) {
        n = { ...n, role: 'passive', serving: false, roleChanges: automatic ? [...recentChanges(n, now), now] : n.roleChanges };
        return { state: withoutAlarm(n, 'TANDEM_ERR_SWITCHOVER_FAILED', 'TANDEM_ERR_SCRIPT_FAILED'), effects: [] };
      }
      // A failed switchover rolls back to this node: it is active and serves again, unless the
      // rollback's own start failed; then the tick retries serving like after any failed start.
      if (d.serving === false) n = { ...n, serving: false, retryServeAt: now + retryDelay(cfg) };
      return { state: withAlarm(n, 'TANDEM_ERR_SWITCHOVER_FAILED', `switchover failed and was rolled back: ${d.error ?? 'no detail'}`, now), effects: [] };
  }
}

/** How long after a failed start the next one is tried. */
function retryDelay(cfg: DecisionConfig): number {
  return Math.max(5_000, cfg.intervalMs * cfg.threshold);
}

function onTick(s: DecisionState, now: number, obs: Observations, cfg: DecisionConfig): StepResult {
  const hb = cfg.intervalMs;
  const promoteAfter = hb * cfg.threshold;
  const demoteAfter = hb * cfg.demoteThreshold;
  const channelDownFor = obs.channel.up ? 0 : now - obs.channel.since;
  const ownFailingFor = obs.ownPublic.state === 'failing' ? now - obs.ownPublic.since : 0;
  const peer = obs.channel.up ? obs.peer : undefined;

  // Whatever else holds: an active peer of a higher epoch took over while this node was away.
  if (s.role === 'active' && peer?.role === 'active' && peer.epoch > s.epoch) {
    return busy(because(s, `the peer took over (epoch ${peer.epoch} > ${s.epoch})`), 'demote', { kind: 'demote', reason: `the peer is active with a newer generation (epoch ${peer.epoch})` });
  }
  if (s.role === 'active' && peer?.role === 'active' && peer.epoch === s.epoch) {
    // Two actives of the same epoch cannot come from one failover: an operator must decide.
    return { state: withAlarm(s, 'TANDEM_ERR_TWO_ACTIVE', `both nodes are active in epoch ${s.epoch}`, now), effects: [] };
  }
  if (s.role === 'passive' && s.serving) {
    if (now < s.retryServeAt) return { state: s, effects: [] };
    return busy(s, 'release', { kind: 'release', reason: 'a passive node must not serve' });
  }

  if (s.phase === 'starting') return onStart(s, now, obs, cfg, channelDownFor);

  if (s.role === 'active') {
    let n = withoutAlarm(s, 'TANDEM_ERR_TWO_ACTIVE');
    // 1. Isolated: stop serving before the peer may start.
    if (channelDownFor >= demoteAfter && obs.ownPublic.checked && ownFailingFor >= demoteAfter) {
      return busy(because(n, 'isolated: channel down and own public checks failing'), 'demote', { kind: 'demote', reason: 'isolated: channel and public network both lost' });
    }
    // 2. Own public side down while the passive sees the public network: hand over, drained.
    if (peer !== undefined && obs.ownPublic.checked && obs.ownPublic.state === 'failing') {
      // The switchover drains the journal before it hands over, so a passive a little behind
      // (writes keep coming) is fine; one in mid-synchronisation or far behind would make the
      // drain time out and roll back, again and again.
      const caughtUp = peer.inSync || (!obs.replication.syncing && (obs.replication.lagMs ?? Infinity) <= cfg.maxLagOnFailoverMs);
      if (peer.publicState === 'ok' && caughtUp) {
        if (damped(n, cfg, now)) return { state: withAlarm(n, 'TANDEM_ERR_FAILOVER_REFUSED', `public link down but ${cfg.maxRoleChangesPerHour} automatic role changes in the last hour: holding`, now), effects: [] };
        if (n.maintenance) return { state: withAlarm(n, 'TANDEM_ERR_FAILOVER_REFUSED', `own public link down, but not handing over by itself: ${HELD}`, now), effects: [] };
        return busy(because(n, 'own public link down'), 'switchover', { kind: 'switchover', reason: 'own public link down; the passive sees the public network' });
      }
      n = withAlarm(n, 'TANDEM_ERR_FAILOVER_REFUSED', `own public link down, but the passive ${peer.publicState !== 'ok' ? 'does not see the public network either' : 'is synchronising or behind beyond failover.maxLagOnFailover'}: staying active`, now);
    } else n = withoutAlarm(n, 'TANDEM_ERR_FAILOVER_REFUSED');
    // 3. Failback to the preferred node once it caught up.
    if (cfg.autoFailback && !cfg.preferred && !n.maintenance && peer?.role === 'passive' && peer.inSync && peer.publicState === 'ok' && !damped(n, cfg, now)) {
      return busy(because(n, 'failback to the preferred node'), 'switchover', { kind: 'switchover', reason: 'automatic failback to the preferred node' });
    }
    if (!n.serving && now >= n.retryServeAt) {
      // Active and not serving (a failed start): try again, no more often than retryDelay.
      return busy(n, 'serve', { kind: 'serve', reason: 'active but not serving: starting the applications again' });
    }
    return { state: n, effects: [] };
  }

  // Passive.
  return onPassive(s, now, obs, cfg, channelDownFor, promoteAfter);
}

function onStart(s: DecisionState, now: number, obs: Observations, cfg: DecisionConfig, channelDownFor: number): StepResult {
  const waited = now - s.startedAt >= cfg.intervalMs * cfg.threshold;
  const peer = obs.channel.up ? obs.peer : undefined;
  if (s.role === 'passive') {
    // A passive never serves; it is steady at once (promotion is decided like any other time).
    return { state: { ...because(s, 'passive'), phase: 'steady' }, effects: [] };
  }
  // A node that was active when it stopped: serve only once it is sure the peer is not active.
  if (peer !== undefined) {
    if (peer.role === 'passive') return busy(because(s, 'active; the passive is connected'), 'serve', { kind: 'serve', reason: 'start-up: the peer is passive' });
    if (peer.epoch < s.epoch) {
      return { state: withAlarm(s, 'TANDEM_ERR_TWO_ACTIVE', `the peer is active with an older generation (epoch ${peer.epoch}); waiting for it to step down`, now), effects: [] };
    }
    return busy(because(s, `the peer is active (epoch ${peer.epoch})`), 'demote', { kind: 'demote', reason: `start-up: the peer is active (epoch ${peer.epoch})` });
  }
  const answer = obs.presence.state === 'alive' ? obs.presence.answer : undefined;
  if (answer?.role === 'active' && answer.epoch >= s.epoch) {
    return busy(because(s, `the peer is active (epoch ${answer.epoch}), seen on the public network`), 'demote', { kind: 'demote', reason: 'start-up: the peer is active on the public network' });
  }
  if (!waited || channelDownFor < cfg.intervalMs * cfg.threshold) {
    return { state: because(s, 'starting: waiting to hear the peer before serving'), effects: [] };
  }
  const gone = obs.presence.state === 'dead' || obs.presence.state === 'unreachable' || (answer !== undefined && answer.role === 'passive');
  if (obs.presence.state === 'stalled' || obs.presence.state === 'invalid') {
    return { state: withAlarm(s, 'TANDEM_ERR_FAILOVER_REFUSED', `start-up: the peer's agent is ${obs.presence.state}; not serving until it is heard`, now), effects: [] };
  }
  if (obs.ownPublic.state === 'failing') {
    return { state: withAlarm(s, 'TANDEM_ERR_FAILOVER_REFUSED', 'start-up: own public checks failing; not serving', now), effects: [] };
  }
  if (!gone && obs.presence.state !== 'unconfigured') return { state: s, effects: [] };
  return busy(because(withoutAlarm(s, 'TANDEM_ERR_FAILOVER_REFUSED'), 'active; the peer is away'), 'serve', { kind: 'serve', reason: 'start-up: the peer is not there' });
}

function onPassive(s: DecisionState, now: number, obs: Observations, cfg: DecisionConfig, channelDownFor: number, promoteAfter: number): StepResult {
  let n = s;
  const peer = obs.channel.up ? obs.peer : undefined;
  if (peer !== undefined && peer.role === 'passive') return onBothPassive(n, now, obs, cfg, peer, promoteAfter);
  n = n.bothPassiveSince === undefined ? n : { ...n, bothPassiveSince: undefined };
  if (peer !== undefined) {
    // Heard the active: nothing to decide; clear what only made sense while it was away.
    return { state: withoutAlarm(because(n, 'passive'), 'TANDEM_ERR_FAILOVER_REFUSED', 'TANDEM_ERR_PEER_STALLED', 'TANDEM_ERR_FENCE_FAILED'), effects: [] };
  }
  if (channelDownFor < promoteAfter) return { state: n, effects: [] };
  const p = obs.presence;
  // The active's agent is there but silent: slow is not gone.
  if (p.state === 'stalled') {
    return { state: withAlarm(n, 'TANDEM_ERR_PEER_STALLED', 'the active agent accepts connections but does not answer (stalled); not taking over', now), effects: [] };
  }
  n = withoutAlarm(n, 'TANDEM_ERR_PEER_STALLED');
  if (p.state === 'alive') {
    // Only the channel is lost: the active is visible on the public network.
    return { state: withoutAlarm(because(n, 'passive, outdated: channel down, the active is visible on the public network'), 'TANDEM_ERR_FAILOVER_REFUSED'), effects: [] };
  }
  const gone = (p.state === 'dead' || p.state === 'unreachable') && now - p.since >= promoteAfter;
  if (!gone) {
    if (p.state === 'unconfigured' || p.state === 'invalid') {
      return { state: withAlarm(n, 'TANDEM_ERR_FAILOVER_REFUSED', `the channel is down and the active's presence is ${p.state === 'unconfigured' ? 'not configured (nodes.<peer>.public)' : 'answered by something that cannot prove it is the peer'}: cannot tell whether it is gone; not taking over`, now), effects: [] };
    }
    return { state: n, effects: [] };
  }
  const refuse = (why: string) => ({ state: withAlarm(n, 'TANDEM_ERR_FAILOVER_REFUSED', `the active is gone but this node does not take over: ${why}`, now), effects: [] });
  if (!cfg.auto) return refuse('failover.auto is off');
  if (n.maintenance) return refuse(HELD);
  if (obs.ownPublic.state === 'failing') return refuse('its own public checks fail (it may be the isolated one)');
  if (obs.ownPublic.state === 'unknown') return refuse('its own public checks have not completed yet');
  // Absence only counts while this node could see the public network: a refused probe sent
  // while its own side was cut says nothing about the active. Without this, the moment its own
  // network came back it would take over on a stale verdict, before the next probe found the
  // active there (seen after an outage of every link).
  if (now - Math.max(p.since, obs.ownPublic.since) < promoteAfter) return { state: n, effects: [] };
  if (!cfg.allowDataLoss) {
    if (obs.replication.syncing) return refuse('it is in the middle of a synchronisation (its tree is not a state of the active)');
    const lag = obs.replication.lagMs;
    if (lag === undefined) return refuse('it never heard from the active since it started');
    if (lag > cfg.maxLagOnFailoverMs) return refuse(`it was ${lag} ms behind when it last heard from the active (failover.maxLagOnFailover is ${cfg.maxLagOnFailoverMs} ms)`);
  }
  if (damped(n, cfg, now)) return refuse(`${cfg.maxRoleChangesPerHour} automatic role changes in the last hour (failover.maxRoleChangesPerHour)`);
  if (now < (n.fenceRetryAt ?? 0)) return { state: n, effects: [] };
  const reason = `failover: channel down and the active's agent ${p.state === 'dead' ? 'refuses connections (gone)' : 'is unreachable'} for ${Math.round((now - Math.max(obs.channel.since, p.since)) / 100) / 10} s`;
  // The new epoch is beyond anything the old active ever had: when it returns, it yields.
  return busy(because(n, reason), 'promote', { kind: 'promote', reason, epoch: Math.max(n.epoch, n.peerEpoch) + 1, fence: true });
}

/**
 * tandem failover --force: an operator vouches that the active is gone, which this node may not
 * be able to tell by itself (failover.auto off, no presence address, its own checks failing,
 * damping, lag). The operator's word covers what the node cannot see, never what it can: while
 * the peer answers on the channel or its agent answers on the public network it is not gone,
 * and a tree in the middle of a synchronisation is no state of the active at all.
 */
function forcedFailover(s: DecisionState, now: number, obs: Observations): StepResult {
  const refused = (why: string): StepResult => ({ state: s, effects: [], refused: why });
  if (s.role !== 'passive') return refused('this node is active already');
  if (s.phase === 'busy') return refused(`a role change is running (${s.pending ?? 'unknown'})`);
  if (obs.channel.up) return refused('the peer answers on the channel: it is not gone (tandem switchover moves the role to a live peer)');
  const p = obs.presence.state;
  if (p === 'alive' || p === 'stalled') return refused(`the peer's agent answers on the public network (presence ${p}): it is not gone`);
  if (obs.replication.syncing) return refused('this node is in the middle of a synchronisation: its tree is not a state of the active');
  const lag = obs.replication.lagMs;
  const behind = lag === undefined ? 'never heard from the active since it started' : `${lag} ms behind when it last heard from the active`;
  const reason = `failover forced by an operator: the active is vouched gone (channel down for ${Math.round((now - obs.channel.since) / 100) / 10} s, presence ${p}; this node was ${behind})`;
  const n = withoutAlarm(s, 'TANDEM_ERR_FAILOVER_REFUSED', 'TANDEM_ERR_PEER_STALLED');
  return busy(because(n, reason, 'operator'), 'promote', { kind: 'promote', reason, epoch: Math.max(n.epoch, n.peerEpoch) + 1, fence: true });
}

/**
 * Both nodes passive, the channel up: nobody serves. It happens after an outage of every link,
 * when the isolated active stepped down and its peer could not take over (its own checks failed
 * too, or it was behind). Once the links are back for threshold intervals, the node that was
 * active last holds the newest data and takes the role again; the other waits.
 */
function onBothPassive(s: DecisionState, now: number, obs: Observations, cfg: DecisionConfig, peer: PeerView, promoteAfter: number): StepResult {
  let n = withoutAlarm(s, 'TANDEM_ERR_PEER_STALLED');
  const since = n.bothPassiveSince ?? now;
  n = { ...because(n, 'passive; the peer is passive too: nobody serves'), bothPassiveSince: since };
  const peerActiveEpoch = peer.activeEpoch;
  // Until the peer said when it was last active (its first heartbeat), nothing is known.
  if (peerActiveEpoch === undefined || now - since < promoteAfter) return { state: n, effects: [] };
  const newest = n.activeEpoch > peerActiveEpoch || (n.activeEpoch === peerActiveEpoch && n.activeEpoch > 0 && cfg.preferred);
  if (!newest) return { state: n, effects: [] };
  const refuse = (why: string) => ({ state: withAlarm(n, 'TANDEM_ERR_FAILOVER_REFUSED', `both nodes are passive and this one holds the newest data, but it does not take over: ${why}`, now), effects: [] });
  if (!cfg.auto) return refuse('failover.auto is off');
  if (n.maintenance) return refuse(HELD);
  if (obs.ownPublic.state !== 'ok') return refuse(`its own public checks are ${obs.ownPublic.state}`);
  if (damped(n, cfg, now)) return refuse(`${cfg.maxRoleChangesPerHour} automatic role changes in the last hour (failover.maxRoleChangesPerHour)`);
  const reason = `both nodes passive for ${Math.round((now - since) / 100) / 10} s: this node was active last (epoch ${n.activeEpoch}) and holds the newest data`;
  return busy(because(n, reason), 'promote', { kind: 'promote', reason, epoch: Math.max(n.epoch, n.peerEpoch) + 1 });
}
