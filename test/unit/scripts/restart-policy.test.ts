// The application monitor's policy, step by step with a fake clock: one failed check restarts
// locally, maxRestarts restarts within the window and one more failure switch over, and
// restarts older than the window no longer count.
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../shared/clock.ts';
import { initialRestartState, restartsInWindow, stepRestartPolicy, type MonitorInput, type RestartLimits, type RestartPolicyState } from '../../../agent/scripts/index.ts';

const limits: RestartLimits = { maxRestarts: 3, restartWindowMs: 600_000 };

/** Drives the policy like the monitor does, keeping its state. */
function driver(l: RestartLimits = limits) {
  const clock = new FakeClock();
  let state: RestartPolicyState = initialRestartState();
  const feed = (input: Omit<MonitorInput, 'now'>) => {
    const step = stepRestartPolicy(state, { ...input, now: clock.monotonic() } as MonitorInput, l);
    state = step.state;
    return step;
  };
  return {
    clock,
    check: (ok: boolean) => feed({ kind: 'check', ok }),
    restarted: (ok: boolean) => feed({ kind: 'restarted', ok }),
    state: () => state,
    inWindow: () => restartsInWindow(state, clock.monotonic(), l),
  };
}

describe('the restart policy', () => {
  it('starts watching and calls a passing check healthy', () => {
    const d = driver();
    expect(d.state().phase).toBe('watching');
    expect(d.check(true)).toMatchObject({ decision: 'healthy', state: { phase: 'healthy' } });
    d.clock.advance(5000);
    expect(d.check(true).decision).toBe('healthy');
    expect(d.inWindow()).toBe(0);
  });

  it('restarts after a single failed check, and waits for the next check once the restart is done', () => {
    const d = driver();
    d.check(true);
    const step = d.check(false);
    expect(step).toMatchObject({ decision: 'restart', state: { phase: 'restarting' } });
    expect(step.reason).toBe('application check failed; local restart 1 of 3 within 10m');
    expect(d.inWindow()).toBe(1);
    expect(d.restarted(true)).toMatchObject({ decision: 'hold', state: { phase: 'watching' } });
    expect(d.check(true).decision).toBe('healthy');
  });

  it('holds a check result that arrives while a restart is in progress', () => {
    const d = driver();
    d.check(false);
    expect(d.check(false)).toMatchObject({ decision: 'hold', reason: 'restart in progress' });
    expect(d.check(true)).toMatchObject({ decision: 'hold', state: { phase: 'restarting' } });
    expect(d.inWindow()).toBe(1);
  });

  it('switches over on the first failure after maxRestarts restarts within the window', () => {
    const d = driver();
    for (let i = 1; i <= 3; i++) {
      d.clock.advance(60_000);
      expect(d.check(false).decision).toBe('restart');
      expect(d.restarted(true).decision).toBe('hold');
      expect(d.inWindow()).toBe(i);
    }
    d.clock.advance(60_000);
    const step = d.check(false);
    expect(step).toMatchObject({ decision: 'switchover', state: { phase: 'switched-over' } });
    expect(step.reason).toBe('application check failed after 3 local restarts within 10m');
  });

  it('counts a restart whose start failed as a failure', () => {
    const d = driver({ maxRestarts: 2, restartWindowMs: 600_000 });
    expect(d.check(false).decision).toBe('restart');
    expect(d.restarted(false)).toMatchObject({ decision: 'restart', reason: 'restart failed: the start script failed; local restart 2 of 2 within 10m' });
    expect(d.restarted(false)).toMatchObject({ decision: 'switchover', reason: 'restart failed: the start script failed after 2 local restarts within 10m' });
  });

  it('forgets restarts older than the window', () => {
    const d = driver();
    for (let i = 0; i < 3; i++) {
      d.check(false);
      d.restarted(true);
      d.clock.advance(100_000);
    }
    // Restarts at 0, 100 s and 200 s; at 600 s the first has left the 10 min window.
    d.clock.advance(300_000);
    expect(d.inWindow()).toBe(2);
    expect(d.check(false).decision).toBe('restart');
    expect(d.inWindow()).toBe(3);
    d.restarted(true);
    expect(d.check(false).decision).toBe('switchover');
  });

  it('switches over on the first failure when no local restart is allowed', () => {
    const d = driver({ maxRestarts: 0, restartWindowMs: 600_000 });
    expect(d.check(false)).toMatchObject({ decision: 'switchover', reason: 'application check failed after 0 local restarts within 10m' });
  });

  it('holds every input once it has switched over', () => {
    const d = driver({ maxRestarts: 0, restartWindowMs: 1000 });
    d.check(false);
    d.clock.advance(10_000);
    expect(d.check(true)).toMatchObject({ decision: 'hold', state: { phase: 'switched-over' } });
    expect(d.check(false).decision).toBe('hold');
    expect(d.restarted(true).decision).toBe('hold');
  });

  it('ignores a restart report when no restart was asked for', () => {
    const d = driver();
    expect(d.restarted(false)).toMatchObject({ decision: 'hold', state: { phase: 'watching' } });
    expect(d.inWindow()).toBe(0);
  });

  it('never changes the state it was given', () => {
    const state = initialRestartState();
    const copy = structuredClone(state);
    stepRestartPolicy(state, { kind: 'check', ok: false, now: 0 }, limits);
    expect(state).toEqual(copy);
  });
});
