// The thin shell around the failover decision: every tick it gathers what the links observe,
// runs the pure decision, carries out at most one effect at a time through the role
// controller, and feeds the outcome back. Every change of role, serving or alarm is logged
// once, with its reason. It never decides anything itself.
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import type { TandemConfig } from '../../shared/config/index.ts';
import type { Logger } from '../../shared/log.ts';
import type { RoleController } from '../roles/index.ts';
import type { NodeStateStore } from '../state/index.ts';
import { initialState, step, type DecisionConfig, type DecisionState, type Effect, type Input, type Observations, type PresenceState, type PublicState } from './decision.ts';

/** What the runner reads of the public link monitors (agent/links). */
export interface PublicView {
  view(): { state: PublicState; since: number; checked: boolean; failingSince?: number | undefined };
}

export interface PresenceViewSource {
  view(): { state: string; since: number; lastAnswer?: { role: 'active' | 'passive'; epoch: number; serving: boolean; receivedAt?: number } | undefined };
}

/** Application monitoring on the active (agent/scripts): runs while the node serves. */
export interface Monitor {
  start(): void;
  stop(): Promise<void>;
}

export interface FailoverRunnerOptions {
  config: TandemConfig;
  log: Logger;
  clock: Clock;
  controller: RoleController;
  nodeState: NodeStateStore;
  publicLink: PublicView;
  /** Undefined when the peer has no presence address (nodes.<peer>.public). */
  presence: PresenceViewSource | undefined;
  monitor?: Monitor | undefined;
}

export interface FailoverStatus {
  phase: DecisionState['phase'];
  pending: DecisionState['pending'];
  serving: boolean;
  reason: string;
  epoch: number;
  alarms: { code: string; message: string; since: number }[];
  channel: { up: boolean; since: number };
  presence: string;
  ownPublic: PublicState;
  roleChangesLastHour: number;
  /** The last change of role since the agent started, with the reason the decision gave. */
  lastRoleChange?: { at: number; from: DecisionState['role']; to: DecisionState['role']; epoch: number; reason: string } | undefined;
}

const PRESENCE_STATES = new Set<string>(['unknown', 'unconfigured', 'alive', 'stalled', 'dead', 'unreachable', 'invalid']);

/**
 * How long the peer has been gone counts from its last signed answer, like the channel's outage
 * counts from its last heartbeat: a verdict of gone (dead, unreachable) is only seen a probe
 * interval later, and that delay must not add to the failover.
 */
export function presenceSince(state: string, since: number, lastAliveAt: number | undefined): number {
  if ((state === 'dead' || state === 'unreachable') && lastAliveAt !== undefined) return Math.min(since, lastAliveAt);
  return since;
}

export class FailoverRunner {
  private state: DecisionState;
  private readonly cfg: DecisionConfig;
  private readonly log: Logger;
  private timer: TimerHandle | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private monitorOn = false;
  private lastObs: Observations | undefined;
  private lastRoleChange: FailoverStatus['lastRoleChange'];

  constructor(private readonly opts: FailoverRunnerOptions) {
    const c = opts.config;
    this.log = opts.log.child({ component: 'failover' });
    this.cfg = {
      intervalMs: c.heartbeat.intervalMs,
      threshold: c.heartbeat.threshold,
      demoteThreshold: c.heartbeat.demoteThreshold,
      auto: c.failover.auto,
      maxLagOnFailoverMs: c.failover.maxLagOnFailover,
      allowDataLoss: c.failover.allowDataLoss,
      autoFailback: c.failover.autoFailback,
      maxRoleChangesPerHour: c.failover.maxRoleChangesPerHour,
      preferred: c.role === 'active',
    };
    const s = opts.nodeState.get();
    this.state = initialState(s.role, s.epoch, opts.clock.now(), s.activeEpoch);
  }

  get serving(): boolean {
    return this.state.serving;
  }

  start(): void {
    const every = Math.max(20, Math.min(100, this.cfg.intervalMs / 4));
    const loop = () => {
      if (this.stopped) return;
      this.input({ kind: 'tick', now: this.opts.clock.now(), obs: this.observe() });
      this.timer = this.opts.clock.setTimeout(loop, every);
    };
    loop();
  }

  /** Feeds one input to the decision (ticks, operator commands, monitor and peer events). */
  input(i: Input): void {
    if (this.stopped) return;
    const before = this.state;
    const r = step(this.state, i, this.cfg);
    this.state = r.state;
    this.report(before, this.state);
    for (const e of r.effects) this.execute(e);
    // The monitor stops itself when it gives up; if the switchover it asked for was held
    // (damping), it starts again: the application stays watched and restarted locally.
    if (i.kind === 'app-failed' && this.state.phase !== 'busy' && this.monitorOn) {
      this.monitorOn = false;
      this.syncMonitor();
    }
  }

  private observe(): Observations {
    const c = this.opts.controller;
    const ch = c.heartbeat.observe();
    const pub = this.opts.publicLink.view();
    const p = this.opts.presence?.view();
    const presenceState = (p === undefined ? 'unconfigured' : PRESENCE_STATES.has(p.state) ? p.state : 'unknown') as PresenceState;
    const answer = p?.lastAnswer;
    const passive = c.passive;
    const sender = c.active?.sender.status();
    const obs: Observations = {
      channel: { up: ch.up, since: ch.since },
      peer: ch.peer,
      // Failing counts from the last answered round (see PublicLinkView.failingSince).
      ownPublic: { state: pub.state, since: pub.state === 'failing' ? Math.min(pub.since, pub.failingSince ?? pub.since) : pub.since, checked: pub.checked },
      presence: { state: presenceState, since: presenceSince(presenceState, p?.since ?? 0, answer?.receivedAt), answer: answer === undefined ? undefined : { role: answer.role, epoch: answer.epoch, serving: answer.serving } },
      replication:
        sender !== undefined
          ? { lagMs: sender.lagMs, syncing: sender.sync !== undefined }
          : { lagMs: passive === undefined ? 0 : passive.receiver.lagAtLastContact(), syncing: passive !== undefined && this.opts.nodeState.get().syncId !== '' },
    };
    this.lastObs = obs;
    return obs;
  }

  private execute(e: Effect): void {
    const c = this.opts.controller;
    const now = () => this.opts.clock.now();
    this.log.info({ effect: e.kind, reason: e.reason, ...('epoch' in e ? { epoch: e.epoch } : {}) }, `failover: ${e.kind}: ${e.reason}`);
    const run = async (): Promise<Input> => {
      switch (e.kind) {
        case 'serve': {
          const o = await c.serve(e.reason);
          return { kind: 'done', now: now(), action: 'serve', ok: o.ok, error: o.error };
        }
        case 'release': {
          const o = await c.release(e.reason);
          return { kind: 'done', now: now(), action: 'release', ok: o.ok, error: o.error };
        }
        case 'promote': {
          void this.stopMonitor();
          const o = await c.promote(e.epoch, e.reason, this.opts.config.failover.startRetries);
          return { kind: 'done', now: now(), action: 'promote', ok: o.ok, error: o.error, epoch: e.epoch };
        }
        case 'demote': {
          void this.stopMonitor();
          const o = await c.demote(e.reason);
          return { kind: 'done', now: now(), action: 'demote', ok: o.ok, error: o.error };
        }
        case 'switchover': {
          void this.stopMonitor();
          const o = await c.switchover(e.reason, { discardOwn: e.discardOwn === true });
          return { kind: 'done', now: now(), action: 'switchover', ok: o.ok, error: o.error, ...(o.serving === undefined ? {} : { serving: o.serving }) };
        }
      }
    };
    this.running = run()
      .catch((err: unknown): Input => {
        this.log.error({ err }, `failover: ${e.kind} failed`);
        return { kind: 'done', now: now(), action: e.kind, ok: false, error: (err as Error).message };
      })
      .then((done) => {
        this.running = undefined;
        this.input(done);
        // The controller is the truth about the role (a promotion can fall back to passive).
        if (this.state.role !== c.role || this.state.epoch !== c.epoch) {
          if (this.state.role !== c.role) this.lastRoleChange = { at: this.opts.clock.now(), from: this.state.role, to: c.role, epoch: c.epoch, reason: this.state.reason };
          this.state = { ...this.state, role: c.role, epoch: c.epoch };
        }
        this.syncMonitor();
      });
  }

  /** Application monitoring runs exactly while this node is active and serving. */
  private syncMonitor(): void {
    const want = this.state.role === 'active' && this.state.serving && this.state.phase !== 'busy';
    if (want && !this.monitorOn) {
      this.monitorOn = true;
      this.opts.monitor?.start();
    } else if (!want && this.monitorOn) void this.stopMonitor();
  }

  /**
   * Not awaited before a role change: the monitor acts on nothing once stop() is called, and a
   * check in flight (up to scripts.checkTimeout) must not delay a demotion.
   */
  private stopMonitor(): Promise<void> {
    if (!this.monitorOn) return Promise.resolve();
    this.monitorOn = false;
    return this.opts.monitor?.stop() ?? Promise.resolve();
  }

  private report(from: DecisionState, to: DecisionState): void {
    if (from.role !== to.role) this.lastRoleChange = { at: this.opts.clock.now(), from: from.role, to: to.role, epoch: to.epoch, reason: to.reason };
    if (from.role !== to.role || from.serving !== to.serving || from.epoch !== to.epoch) {
      this.log.info(
        { from: { role: from.role, serving: from.serving, epoch: from.epoch }, to: { role: to.role, serving: to.serving, epoch: to.epoch }, reason: to.reason },
        `failover: now ${to.role}${to.serving ? ', serving' : ''} (epoch ${to.epoch}): ${to.reason}`,
      );
    }
    for (const [code, a] of Object.entries(to.alarms)) {
      if (from.alarms[code]?.message !== a.message) this.log.warn({ code, alarm: a.message }, `failover: alarm ${code}: ${a.message}`);
    }
    for (const code of Object.keys(from.alarms)) if (!(code in to.alarms)) this.log.info({ code }, `failover: alarm ${code} cleared`);
    if (from.phase !== to.phase || from.serving !== to.serving || from.role !== to.role) this.syncMonitor();
  }

  status(): FailoverStatus {
    const o = this.lastObs;
    const now = this.opts.clock.now();
    return {
      phase: this.state.phase,
      pending: this.state.pending,
      serving: this.state.serving,
      reason: this.state.reason,
      epoch: this.state.epoch,
      alarms: Object.entries(this.state.alarms).map(([code, a]) => ({ code, message: a.message, since: a.since })),
      channel: { up: o?.channel.up ?? false, since: o?.channel.since ?? now },
      presence: o?.presence.state ?? 'unknown',
      ownPublic: o?.ownPublic.state ?? 'unknown',
      roleChangesLastHour: this.state.roleChanges.filter((t) => now - t < 3_600_000).length,
      lastRoleChange: this.lastRoleChange,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.running;
    await this.stopMonitor();
  }
}
