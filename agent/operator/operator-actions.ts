// What the control API's operator endpoints do on this node: pause or resume replication, set
// or lift the maintenance hold, rotate the token, force a failover. Each keeps what was asked
// (operator.json) before it acts, and answers what came of it; the decision itself stays in
// agent/failover (maintenance, forced failover) and in the sender (pause).
import type { Clock } from '../../shared/clock.ts';
import type { ActionAnswer } from '../control/control-server.ts';
import type { EventDraft, TandemEvent } from '../events/index.ts';
import type { FailoverStatus } from '../failover/index.ts';
import type { OperatorSettingsStore } from './operator-settings.ts';

export interface OperatorActionsOptions {
  settings: OperatorSettingsStore;
  /** The active engine's sender, while this node is active. */
  sender: () => { setPaused(paused: boolean): void } | undefined;
  failover: {
    setMaintenance(on: boolean): void;
    forceFailover(): string | undefined;
    status(): FailoverStatus;
  };
  role: () => 'active' | 'passive';
  /** Rotates the control API's credentials (agent/control ControlAuth). */
  rotate: (salt: string) => void;
  emit: (d: EventDraft) => void;
  /** Reads the status document again, so that the change is an event at once. */
  refresh: () => void;
  clock: Clock;
}

/** How long a forced failover is waited for (the promotion runs start and check with retries). */
const FORCED_FAILOVER_WAIT_MS = 120_000;

export class OperatorActions {
  constructor(private readonly o: OperatorActionsOptions) {}

  async pause(paused: boolean, reason: string): Promise<ActionAnswer> {
    const sender = this.o.sender();
    if (sender === undefined) return { ok: false, code: 'TANDEM_ERR_ACTION_REFUSED', message: "this node is not active; ask the active node (a pause holds the active's replication)" };
    const was = this.o.settings.get().paused.on;
    if (was !== paused) await this.o.settings.update({ paused: { on: paused, since: this.o.clock.now(), reason: reason === '' ? (paused ? 'replication paused by an operator' : 'replication resumed by an operator') : reason } });
    sender.setPaused(paused);
    this.o.refresh();
    const message = was === paused ? `replication was ${paused ? 'paused' : 'running'} already` : paused ? 'replication paused: the journal keeps what is written until tandem resume' : 'replication resumed: the passive catches up from the journal';
    return { ok: true, message, changed: was !== paused };
  }

  async maintenance(on: boolean, reason: string): Promise<ActionAnswer> {
    const was = this.o.settings.get().maintenance.on;
    if (was !== on) await this.o.settings.update({ maintenance: { on, since: this.o.clock.now(), reason: reason === '' ? (on ? 'maintenance mode on: no automatic role change' : 'maintenance mode off') : reason } });
    this.o.failover.setMaintenance(on);
    this.o.refresh();
    const message = was === on ? `maintenance was ${on ? 'on' : 'off'} already` : on ? 'maintenance on: no automatic role change on this node' : 'maintenance off: automatic role changes again';
    return { ok: true, message, changed: was !== on };
  }

  /** Kept before it is used: a restart must not bring back the token this rotation retired. */
  async rotateToken(salt: string): Promise<ActionAnswer> {
    await this.o.settings.update({ tokenSalt: salt, tokenRotatedAt: this.o.clock.now() });
    this.o.rotate(salt);
    this.o.emit({ kind: 'token', from: null, to: null, reason: 'control token rotated: earlier tokens and browser sessions no longer work', trigger: 'operator' });
    return { ok: true, message: 'control token rotated' };
  }

  /**
   * tandem failover --force, on a passive: the decision judges it on what the links see now
   * (refused while the peer answers); taken, this waits until the promotion ends.
   */
  async forceFailover(): Promise<ActionAnswer> {
    const refused = this.o.failover.forceFailover();
    if (refused !== undefined) return { ok: false, code: 'TANDEM_ERR_FAILOVER_REFUSED', message: `failover --force: ${refused}; nothing was changed` };
    const deadline = this.o.clock.monotonic() + FORCED_FAILOVER_WAIT_MS;
    while (this.o.clock.monotonic() < deadline) {
      await new Promise<void>((r) => this.o.clock.setTimeout(r, 50));
      const st = this.o.failover.status();
      if (st.phase === 'busy') continue;
      if (this.o.role() === 'active') {
        const failed = st.alarms.find((a) => a.code === 'TANDEM_ERR_FAILOVER_FAILED');
        return failed === undefined ? { ok: true, message: `this node is active now (epoch ${st.epoch}) and serves` } : { ok: false, code: 'TANDEM_ERR_FAILOVER_FAILED', message: `this node is active now (epoch ${st.epoch}) but does not serve: ${failed.message}` };
      }
      return { ok: false, code: 'TANDEM_ERR_FAILOVER_FAILED', message: 'the promotion did not happen (see the agent log and tandem events)' };
    }
    return { ok: false, code: 'TANDEM_ERR_FAILOVER_FAILED', message: `the promotion did not finish within ${FORCED_FAILOVER_WAIT_MS / 1000} s; it may still be running` };
  }

  /** Events this node's holds follow: a node that stops being active drops its pause. */
  onEvent(e: TandemEvent): void {
    if (e.kind === 'role' && e.to === 'passive' && this.o.settings.get().paused.on) {
      void this.o.settings.update({ paused: { on: false, since: this.o.clock.now(), reason: 'the role changed: a pause holds on the active only' } }).catch(() => undefined);
    }
  }
}
