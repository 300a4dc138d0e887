// What application monitoring does about a check result: a pure state machine over plain
// data, with time as an input. One failed check restarts the application locally (the check
// script is expected to retry on its own before it fails); after maxRestarts restarts within
// restartWindowMs, the next failure hands the role to the peer (switchover). A restart whose
// start fails counts as a failure. Restarts older than the window are forgotten.

export type MonitorDecision =
  /** The check passed: nothing to do. */
  | 'healthy'
  /** Run stop then start on this node, then report back with a `restarted` input. */
  | 'restart'
  /** Local restarts are exhausted: hand the active role to the peer. */
  | 'switchover'
  /** Nothing to do now (a restart is in progress, or the monitor already gave up). */
  | 'hold';

export type MonitorPhase =
  /** No verdict yet: monitoring just began, or a restart just finished. */
  | 'watching'
  | 'healthy'
  | 'restarting'
  /** Gave up; only a new start of the monitor leaves this phase. */
  | 'switched-over';

export interface RestartLimits {
  maxRestarts: number;
  restartWindowMs: number;
}

export interface RestartPolicyState {
  phase: MonitorPhase;
  /** When each restart within the window was decided (monotonic ms), oldest first. */
  restarts: number[];
}

export type MonitorInput =
  | { kind: 'check'; ok: boolean; now: number }
  /** The restart's stop and start ran; `ok` is whether start succeeded. */
  | { kind: 'restarted'; ok: boolean; now: number };

export interface RestartStep {
  state: RestartPolicyState;
  decision: MonitorDecision;
  /** In words, for the log, TANDEM_REASON and the switchover. */
  reason: string;
}

export function initialRestartState(): RestartPolicyState {
  return { phase: 'watching', restarts: [] };
}

/** Restarts still inside the window at `now`. */
export function restartsInWindow(state: RestartPolicyState, now: number, limits: RestartLimits): number {
  return recent(state.restarts, now, limits).length;
}

export function stepRestartPolicy(state: RestartPolicyState, input: MonitorInput, limits: RestartLimits): RestartStep {
  const restarts = recent(state.restarts, input.now, limits);
  const s = { ...state, restarts };
  if (s.phase === 'switched-over') return { state: s, decision: 'hold', reason: 'already switched over' };
  if (input.kind === 'check') {
    // A check that ran while a restart was under way says nothing about the restarted application.
    if (s.phase === 'restarting') return { state: s, decision: 'hold', reason: 'restart in progress' };
    if (input.ok) return { state: { ...s, phase: 'healthy' }, decision: 'healthy', reason: 'check passed' };
    return failure(s, input.now, 'application check failed', limits);
  }
  if (s.phase !== 'restarting') return { state: s, decision: 'hold', reason: 'no restart was in progress' };
  if (input.ok) return { state: { ...s, phase: 'watching' }, decision: 'hold', reason: 'application restarted; waiting for the next check' };
  return failure(s, input.now, 'restart failed: the start script failed', limits);
}

function failure(s: RestartPolicyState, now: number, what: string, limits: RestartLimits): RestartStep {
  const n = s.restarts.length;
  if (n < limits.maxRestarts) {
    return {
      state: { phase: 'restarting', restarts: [...s.restarts, now] },
      decision: 'restart',
      reason: `${what}; local restart ${n + 1} of ${limits.maxRestarts} within ${formatWindow(limits.restartWindowMs)}`,
    };
  }
  return {
    state: { ...s, phase: 'switched-over' },
    decision: 'switchover',
    reason: `${what} after ${n} local restart${n === 1 ? '' : 's'} within ${formatWindow(limits.restartWindowMs)}`,
  };
}

function recent(restarts: number[], now: number, limits: RestartLimits): number[] {
  return restarts.filter((t) => now - t < limits.restartWindowMs);
}

function formatWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
