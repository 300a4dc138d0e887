// The thin shell around the failover decision: every tick it gathers what the links observe,
// runs the pure decision, carries out at most one effect at a time through the role
// controller, and feeds the outcome back. Every change of role, serving or alarm is logged
// once, with its reason. It never decides anything itself.
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import type { TandemConfig } from '../../shared/config/index.ts';
import type { Logger } from '../../shared/log.ts';
import type { RoleController } from '../roles/index.ts';
import type { NodeStateStore } from '../state/index.ts';
import { initialState, step, type DecisionConfig, type DecisionState, type Effect, type Input, type Observations, type PresenceState, type PublicState, type Trigger } from './decision.ts';

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
  /** An operator's maintenance hold, as persisted when the agent starts (agent/operator). */
  maintenance?: boolean | undefined;
  /** Runs the fence script (scripts.fence) before a failover's promotion; undefined: none configured. */
  fence?: ((reason: string) => Promise<{ ok: boolean; error?: string | undefined }>) | undefined;
}

/** One input the decision took, for the state tracker: what came in and what it started. */
export interface RunnerStep {
  input: Input;
  effects: Effect[];
  /** The decision's reason and trigger after the input. */
  reason: string;
  trigger: Trigger;
}

export interface FailoverStatus {
  phase: DecisionState['phase'];
  pending: DecisionState['pending'];
  serving: boolean;
  reason: string;
  /** What set `reason` in motion: automatic, operator or planned (docs/events.md). */
  trigger: Trigger;
  maintenance: boolean;
  epoch: number;
  alarms: { code: string; message: string; since: number }[];
  channel: { up: boolean; since: number };
  presence: string;
  ownPublic: PublicState;
  roleChangesLastHour: number;
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
  private readonly stepListeners = new Set<(step: RunnerStep) => void>();
  private listenerErrorLoggedAt = -Infinity;

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
    this.state = initialState(s.role, s.epoch, opts.clock.now(), s.activeEpoch, opts.maintenance === true);
  }

  /**
   * Called after every input the decision took (ticks included): the state tracker
   * (agent/events) looks for changes then, so a change is reported within one tick.
   */
  onStep(listener: (step: RunnerStep) => void): () => void {
    this.stepListeners.add(listener);
    return () => this.stepListeners.delete(listener);
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

  /**
   * Feeds one input to the decision (ticks, operator commands, monitor and peer events).
   * Returns why an operator's request was not taken (undefined: taken, or not a request).
   */
  input(i: Input): string | undefined {
    if (this.stopped) return 'the agent is stopping';
    const before = this.state;
    const r = step(this.state, i, this.cfg);
    this.state = r.state;
    // Listeners hear of the step before its effects begin: an action is reported before what
    // it does (stopping the application monitor, running a script) is.
    for (const l of this.stepListeners) {
      // An observer's failure must never stop a decision from being carried out.
      try {
        l({ input: i, effects: r.effects, reason: this.state.reason, trigger: this.state.trigger });
      } catch (err) {
        // At most one line per 30 s: it would otherwise repeat at every tick.
        const now = this.opts.clock.monotonic();
        if (now - this.listenerErrorLoggedAt >= 30_000) {
          this.listenerErrorLoggedAt = now;
          this.log.error({ err, code: 'TANDEM_ERR_INTERNAL' }, 'failover: a step listener failed');
        }
      }
    }
    this.report(before, this.state);
    for (const e of r.effects) this.execute(e);
    // The monitor stops itself when it gives up; if the switchover it asked for was held
    // (damping), it starts again: the application stays watched and restarted locally.
    if (i.kind === 'app-failed' && this.state.phase !== 'busy' && this.monitorOn) {
      this.monitorOn = false;
      this.syncMonitor();
    }
    if (i.kind === 'maintenance') this.syncMonitor();
    return r.refused;
  }

  /** tandem failover --force on this passive: judged on what the links observe right now. */
  forceFailover(): string | undefined {
    return this.input({ kind: 'operator-failover', now: this.opts.clock.now(), obs: this.observe() });
  }

  /** tandem maintenance on|off. */
  setMaintenance(on: boolean): void {
    this.input({ kind: 'maintenance', now: this.opts.clock.now(), on });
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
          ? { lagMs: Math.max(sender.lagMs, sender.point === undefined ? 0 : Math.max(0, this.opts.clock.now() - sender.point.at)), syncing: sender.sync !== undefined }
          : { lagMs: passive === undefined ? 0 : passive.receiver.lagAtLastContact(ch.delayMs), syncing: passive !== undefined && this.opts.nodeState.get().syncId !== '' },
    };
    this.lastObs = obs;
    return obs;
  }

  private execute(e: Effect): void {
    const c = this.opts.controller;
    const now = () => this.opts.clock.now();
    // The state tracker logs what this starts as an event (state, failover, switchover).
    this.log.debug({ effect: e.kind, reason: e.reason, ...('epoch' in e ? { epoch: e.epoch } : {}) }, 'failover: effect');
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
          if (e.fence === true && this.opts.fence !== undefined) {
            const f = await this.opts.fence(e.reason);
            if (!f.ok) return { kind: 'done', now: now(), action: 'promote', ok: false, error: f.error, fenceFailed: true };
          }
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
        // (The last role change is the state tracker's: agent/events, from the role events.)
        if (this.state.role !== c.role || this.state.epoch !== c.epoch) this.state = { ...this.state, role: c.role, epoch: c.epoch };
        this.syncMonitor();
      });
  }

  /**
   * Application monitoring runs exactly while this node is active and serving, and not in
   * maintenance: an operator working on the application must not see it restarted under him.
   */
  private syncMonitor(): void {
    const want = this.state.role === 'active' && this.state.serving && this.state.phase !== 'busy' && !this.state.maintenance;
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

  /**
   * Role, serving and alarm changes are logged once, as events, by the state tracker
   * (agent/events), which reads them from status() at every step; an alarm whose message
   * changes (same code) is logged here at debug level only.
   */
  private report(from: DecisionState, to: DecisionState): void {
    for (const [code, a] of Object.entries(to.alarms)) {
      if (from.alarms[code] !== undefined && from.alarms[code].message !== a.message) this.log.debug({ code, alarm: a.message }, 'failover: alarm message changed');
    }
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
      trigger: this.state.trigger,
      maintenance: this.state.maintenance,
      epoch: this.state.epoch,
      alarms: Object.entries(this.state.alarms).map(([code, a]) => ({ code, message: a.message, since: a.since })),
      channel: { up: o?.channel.up ?? false, since: o?.channel.since ?? now },
      presence: o?.presence.state ?? 'unknown',
      ownPublic: o?.ownPublic.state ?? 'unknown',
      roleChangesLastHour: this.state.roleChanges.filter((t) => now - t < 3_600_000).length,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.running;
    await this.stopMonitor();
  }
}
