// Application monitoring on the active node: runs `check` every interval, and acts on what
// the restart policy decides (restart locally, or give up and ask for a switchover). It never
// runs two checks at once, and once stopped it never runs another script: a node told to stop
// serving must not have its application started again by a restart that was half way through.
import { EventEmitter } from 'node:events';
import { systemClock, type Clock, type TimerHandle } from '../../shared/clock.ts';
import type { Logger } from '../../shared/log.ts';
import { initialRestartState, restartsInWindow, stepRestartPolicy, type MonitorInput, type MonitorPhase, type RestartLimits, type RestartPolicyState, type RestartStep } from './restart-policy.ts';
import type { ScriptContext, ScriptRunner } from './script-runner.ts';

export type AppMonitorState = 'stopped' | MonitorPhase;

export interface AppMonitorStatus {
  /** The last check that counted (wall-clock `at`, ms since the epoch). */
  lastCheck?: { ok: boolean; at: number };
  restartsInWindow: number;
  state: AppMonitorState;
}

export interface AppMonitorStateChange {
  from: AppMonitorState;
  to: AppMonitorState;
  reason: string;
}

export interface AppMonitorEvents {
  state: [change: AppMonitorStateChange];
}

export interface AppMonitorOptions {
  /** Only `run` is used; a ScriptRunner shared with the failover runner, so start/stop stay serial. */
  runner: Pick<ScriptRunner, 'run'>;
  /** Pause between the end of one check and the start of the next (scripts.checkInterval). */
  intervalMs: number;
  maxRestarts: number;
  restartWindowMs: number;
  /** Role, reason and generation as they are when a script runs. */
  context: () => ScriptContext;
  /** Called once when local restarts are exhausted; monitoring stops until `start()` again. */
  onSwitchover: (reason: string) => void;
  clock?: Clock;
  log: Logger;
}

export class AppMonitor extends EventEmitter<AppMonitorEvents> {
  private readonly opts: AppMonitorOptions;
  private readonly limits: RestartLimits;
  private readonly clock: Clock;
  private readonly log: Logger;
  private policy: RestartPolicyState = initialRestartState();
  private current: AppMonitorState = 'stopped';
  /** Bumped by every start() and stop(): a cycle of an older session must not act. */
  private session = 0;
  private running = false;
  private timer: TimerHandle | undefined;
  private inFlight: Promise<void> | undefined;
  private lastCheck: { ok: boolean; at: number } | undefined;
  private localFailureLogged = false;

  constructor(opts: AppMonitorOptions) {
    super();
    this.opts = opts;
    this.limits = { maxRestarts: opts.maxRestarts, restartWindowMs: opts.restartWindowMs };
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log.child({ component: 'app-monitor' });
  }

  /** Begins monitoring with a fresh restart budget; the first check runs one interval from now. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.session += 1;
    this.policy = initialRestartState();
    this.setState('watching', 'monitoring started');
    this.schedule(this.session);
  }

  /**
   * Stops monitoring. From the moment this is called no decision is acted on and no script is
   * started; the promise resolves once a script in flight has ended. A caller about to run
   * `stop` need not wait for it.
   */
  stop(): Promise<void> {
    this.running = false;
    this.session += 1;
    this.timer?.cancel();
    this.timer = undefined;
    this.setState('stopped', 'monitoring stopped');
    return this.inFlight ?? Promise.resolve();
  }

  status(): AppMonitorStatus {
    return {
      ...(this.lastCheck === undefined ? {} : { lastCheck: { ...this.lastCheck } }),
      restartsInWindow: restartsInWindow(this.policy, this.clock.monotonic(), this.limits),
      state: this.current,
    };
  }

  private live(session: number): boolean {
    return this.running && session === this.session;
  }

  private schedule(session: number): void {
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (!this.live(session)) return;
      const cycle = this.cycle(session).finally(() => {
        if (this.inFlight === cycle) this.inFlight = undefined;
        if (this.live(session)) this.schedule(session);
      });
      this.inFlight = cycle;
    }, this.opts.intervalMs);
  }

  private async cycle(session: number): Promise<void> {
    try {
      const check = await this.opts.runner.run('check', this.opts.context());
      if (!this.live(session)) return;
      // This node could not even start the check (out of descriptors or processes): that says
      // nothing about the application, and restarting it would only fail the same way.
      if (check.localFailure === true) {
        if (!this.localFailureLogged) this.log.warn({ error: check.error }, 'app monitor: this node cannot run the check script (out of resources); the application is not judged until it can');
        this.localFailureLogged = true;
        return;
      }
      this.localFailureLogged = false;
      this.lastCheck = { ok: check.ok, at: this.clock.now() };
      let step = this.step({ kind: 'check', ok: check.ok, now: this.clock.monotonic() });
      while (step.decision === 'restart') {
        this.log.warn({ restartsInWindow: restartsInWindow(this.policy, this.clock.monotonic(), this.limits), reason: step.reason }, 'app monitor: restarting the application');
        const ctx = { ...this.opts.context(), reason: `restart: ${step.reason}` };
        const stopped = await this.opts.runner.run('stop', ctx);
        if (!this.live(session)) return;
        // A failed stop may leave the application half up; start is idempotent and the next
        // check judges the result, so go on.
        if (!stopped.ok) this.log.warn({ reason: step.reason }, 'app monitor: stop failed during a restart; starting anyway');
        const started = await this.opts.runner.run('start', ctx);
        if (!this.live(session)) return;
        step = this.step({ kind: 'restarted', ok: started.ok, now: this.clock.monotonic() });
      }
      if (step.decision === 'switchover') {
        this.running = false;
        this.log.error({ reason: step.reason }, 'app monitor: local restarts exhausted; asking for a switchover');
        try {
          this.opts.onSwitchover(step.reason);
        } catch (err) {
          this.log.error({ err }, 'app monitor: the switchover callback threw');
        }
      }
    } catch (err) {
      // The runner never throws by contract; anything here is a bug, and monitoring goes on.
      this.log.error({ err }, 'app monitor: check cycle failed');
    }
  }

  private step(input: MonitorInput): RestartStep {
    const step = stepRestartPolicy(this.policy, input, this.limits);
    this.policy = step.state;
    this.setState(step.state.phase, step.reason);
    return step;
  }

  private setState(to: AppMonitorState, reason: string): void {
    const from = this.current;
    if (from === to) return;
    this.current = to;
    this.log.info({ from, to, reason }, 'app monitor: state');
    this.emit('state', { from, to, reason });
  }
}
