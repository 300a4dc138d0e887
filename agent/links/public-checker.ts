// The thin runner around public-link-state: every interval it probes all targets in parallel
// and feeds the round to the state machine. It logs a state change once, never a probe, and
// a target this node cannot check (no ping here) once, then leaves it out of the verdict.
import { systemClock, type Clock } from '../../shared/clock.ts';
import type { PublicTarget } from '../../shared/config/load.ts';
import type { Logger } from '../../shared/log.ts';
import { checkPositiveInt, invalidOption } from './link-options.ts';
import { PeriodicRun } from './periodic-run.ts';
import { applyPublicRound, initialPublicLinkView, type LinkChange, type PublicLinkState, type PublicLinkView, type PublicTargetView } from './public-link-state.ts';
import { probeTarget, type TargetOutcome, type TargetProbe } from './target-probe.ts';

export interface PublicCheckerOptions {
  targets: PublicTarget[];
  intervalMs: number;
  /** Consecutive failed rounds before the link counts as failing. */
  threshold: number;
  clock?: Clock;
  log: Logger;
  probe?: TargetProbe;
}

/**
 * A probe gets this long past its own timeout before the checker gives up on it: the built-in
 * probes always settle in time, so this only bounds an injected or buggy one, which would
 * otherwise hold every later round.
 */
export const PROBE_GRACE_MS = 1000;

export type PublicChangeListener = (view: PublicLinkView, change: LinkChange<PublicLinkState>) => void;

export class PublicChecker {
  private readonly targets: PublicTarget[];
  private readonly threshold: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly probe: TargetProbe;
  private readonly run: PeriodicRun;
  private readonly listeners = new Set<PublicChangeListener>();
  /** Targets this node cannot check (index → why); reported once and left out of every round. */
  private readonly unavailable = new Map<number, string>();
  private current: PublicLinkView;
  private started = false;

  constructor(opts: PublicCheckerOptions) {
    const op = 'start the public checks';
    if (!Array.isArray(opts.targets)) throw invalidOption(op, 'targets', 'expected a list');
    opts.targets.forEach((t, i) => checkPositiveInt(op, `targets.${i}.timeoutMs`, t.timeoutMs));
    checkPositiveInt(op, 'intervalMs', opts.intervalMs);
    checkPositiveInt(op, 'threshold', opts.threshold);
    this.targets = [...opts.targets];
    this.threshold = opts.threshold;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log.child({ component: 'links' });
    this.probe = opts.probe ?? ((t, signal) => probeTarget(t, signal, { clock: this.clock }));
    this.current = initialPublicLinkView(this.clock.now(), this.targets);
    this.run = new PeriodicRun({
      clock: this.clock,
      intervalMs: opts.intervalMs,
      step: (signal) => this.round(signal),
      onError: (err) => this.log.error({ code: 'TANDEM_ERR_INTERNAL', err }, 'public checks: a round failed unexpectedly'),
    });
  }

  /** Starts the rounds (the first at once). With no target it only says so, once. */
  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.targets.length === 0) {
      this.log.warn({ targets: 0 }, 'public checks: no target configured; this node cannot tell that it is isolated and counts its public link as up');
      return;
    }
    this.run.start();
  }

  /** Stops the rounds; resolves once no probe is left running. */
  stop(): Promise<void> {
    this.started = false;
    return this.run.stop();
  }

  view(): PublicLinkView {
    return this.current;
  }

  /** Called on every state change (and when the link becomes unchecked); returns the unsubscribe. */
  onChange(cb: PublicChangeListener): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  private async round(signal: AbortSignal): Promise<void> {
    // Indexed by position in the configuration: two targets may share a URL.
    const outcomes: (TargetOutcome | undefined)[] = await Promise.all(
      this.targets.map((t, i) => (this.unavailable.has(i) ? Promise.resolve(undefined) : this.guarded(t, signal))),
    );
    // A round cut short by stop() says nothing about the network.
    if (signal.aborted) return;
    outcomes.forEach((o, i) => {
      if (o?.result !== 'unavailable') return;
      this.unavailable.set(i, o.error);
      this.log.warn({ target: this.targets[i]?.url, reason: o.error }, 'public checks: this node cannot check a target; it is left out of the verdict');
    });
    const targets: PublicTargetView[] = this.targets.map((t, i) => {
      const o = outcomes[i];
      if (o === undefined || o.result === 'unavailable') return { url: t.url, ok: null, error: `unavailable: ${this.unavailable.get(i) ?? 'not checked'}` };
      return o.result === 'ok' ? { url: t.url, ok: true, latencyMs: round1(o.latencyMs) } : { url: t.url, ok: false, latencyMs: round1(o.latencyMs), error: o.error };
    });
    const checked = this.unavailable.size < this.targets.length;
    const { view, change } = applyPublicRound(this.current, { at: this.clock.now(), checked, targets }, this.threshold);
    this.current = view;
    if (change === undefined) return;
    this.report(view, change);
    for (const cb of this.listeners) cb(view, change);
  }

  /** The probe, bounded even if it never settles by itself. */
  private guarded(t: PublicTarget, signal: AbortSignal): Promise<TargetOutcome> {
    const ac = new AbortController();
    const onAbort = (): void => ac.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const limitMs = t.timeoutMs + PROBE_GRACE_MS;
    let timer: { cancel(): void } | undefined;
    const overdue = new Promise<TargetOutcome>((resolve) => {
      timer = this.clock.setTimeout(() => {
        ac.abort();
        resolve({ result: 'failed', latencyMs: limitMs, error: `the check did not finish within ${limitMs} ms` });
      }, limitMs);
    });
    const probed = Promise.resolve()
      .then(() => this.probe(t, ac.signal))
      .catch((err: unknown): TargetOutcome => ({ result: 'failed', latencyMs: 0, error: String(err) }));
    return Promise.race([probed, overdue]).finally(() => {
      timer?.cancel();
      signal.removeEventListener('abort', onAbort);
    });
  }

  private report(view: PublicLinkView, change: LinkChange<PublicLinkState>): void {
    const fields = { from: change.from, to: change.to, reason: change.reason, checked: view.checked };
    if (change.to === 'failing') {
      const failures = view.targets.filter((t) => t.ok === false).map((t) => ({ url: t.url, error: t.error }));
      this.log.warn({ ...fields, failedRounds: view.consecutiveFailures, targets: failures }, 'public checks: link failing');
    } else if (!view.checked) {
      this.log.warn(fields, 'public checks: no usable target left; this node cannot tell that it is isolated and counts its public link as up');
    } else {
      this.log.info({ ...fields, targets: view.targets.filter((t) => t.ok === true).map((t) => ({ url: t.url, latencyMs: t.latencyMs })) }, 'public checks: link ok');
    }
  }
}

const round1 = (ms: number): number => Math.round(ms * 10) / 10;
