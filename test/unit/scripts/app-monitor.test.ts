// The application monitor's loop with a fake clock and a fake runner: when checks run, what a
// failure leads to, and that nothing is started once the monitor is told to stop.
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../shared/clock.ts';
import { silentLogger } from '../../../shared/log.ts';
import { AppMonitor, type AppMonitorStateChange, type ScriptContext, type ScriptName, type ScriptResult } from '../../../agent/scripts/index.ts';

const result = (name: ScriptName, ok: boolean): ScriptResult => ({ name, ok, exitCode: ok ? 0 : 1, signal: null, timedOut: false, durationMs: 1 });

interface Deferred {
  name: ScriptName;
  ctx: ScriptContext;
  resolve: (ok: boolean) => void;
  /** Settles it as a run this node could not even start (EMFILE): no verdict on the application. */
  starve: () => void;
}

/** A runner whose every run waits until the test settles it. */
function fakeRunner() {
  const calls: Deferred[] = [];
  return {
    calls,
    run(name: ScriptName, ctx: ScriptContext): Promise<ScriptResult> {
      return new Promise((resolve) =>
        calls.push({ name, ctx, resolve: (ok) => resolve(result(name, ok)), starve: () => resolve({ ...result(name, false), exitCode: null, error: 'spawn EMFILE', localFailure: true }) }),
      );
    },
  };
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

function setup(opts: { maxRestarts?: number; restartWindowMs?: number } = {}) {
  const clock = new FakeClock();
  const runner = fakeRunner();
  const switchovers: string[] = [];
  const changes: AppMonitorStateChange[] = [];
  const monitor = new AppMonitor({
    runner,
    intervalMs: 1000,
    maxRestarts: opts.maxRestarts ?? 2,
    restartWindowMs: opts.restartWindowMs ?? 60_000,
    context: () => ({ role: 'active', reason: 'serving', generation: 'g7' }),
    onSwitchover: (reason) => switchovers.push(reason),
    clock,
    log: silentLogger(),
  });
  monitor.on('state', (c) => changes.push(c));
  /** Settles the last call, which must be `name`. */
  const settle = async (name: ScriptName, ok: boolean) => {
    const last = runner.calls.at(-1);
    expect(last?.name).toBe(name);
    last!.resolve(ok);
    await flush();
  };
  const tick = async (ms = 1000) => {
    clock.advance(ms);
    await flush();
  };
  return { clock, runner, monitor, switchovers, changes, settle, tick, names: () => runner.calls.map((c) => c.name) };
}

describe('the application monitor', () => {
  it('does not count a check this node could not start (out of descriptors) against the application', async () => {
    const t = setup({ maxRestarts: 0 });
    t.monitor.start();
    for (let i = 0; i < 5; i++) {
      await t.tick(1000);
      t.runner.calls.at(-1)!.starve();
      await flush();
    }
    // Five starved checks in a row: no restart, no switchover, and no verdict yet.
    expect(t.names()).toEqual(['check', 'check', 'check', 'check', 'check']);
    expect(t.switchovers).toEqual([]);
    expect(t.monitor.status().lastCheck).toBeUndefined();
    await t.tick(1000);
    await t.settle('check', false);
    // A real failure still counts (no restarts allowed here: straight to a switchover).
    expect(t.switchovers).toHaveLength(1);
  });

  it('runs a check one interval after the previous one ended, never two at once', async () => {
    const t = setup();
    t.monitor.start();
    await t.tick(999);
    expect(t.names()).toEqual([]);
    await t.tick(1);
    expect(t.names()).toEqual(['check']);
    expect(t.runner.calls[0]!.ctx).toEqual({ role: 'active', reason: 'serving', generation: 'g7' });
    await t.tick(10_000);
    expect(t.names()).toEqual(['check']);
    await t.settle('check', true);
    expect(t.monitor.status()).toMatchObject({ state: 'healthy', restartsInWindow: 0, lastCheck: { ok: true, at: t.clock.now() } });
    await t.tick(999);
    expect(t.names()).toEqual(['check']);
    await t.tick(1);
    expect(t.names()).toEqual(['check', 'check']);
  });

  it('restarts with stop then start after a failed check, and says why in TANDEM_REASON', async () => {
    const t = setup();
    t.monitor.start();
    await t.tick();
    await t.settle('check', false);
    expect(t.names()).toEqual(['check', 'stop']);
    expect(t.monitor.status().state).toBe('restarting');
    await t.settle('stop', true);
    expect(t.names()).toEqual(['check', 'stop', 'start']);
    expect(t.runner.calls[2]!.ctx.reason).toBe('restart: application check failed; local restart 1 of 2 within 1m');
    await t.settle('start', true);
    expect(t.monitor.status()).toMatchObject({ state: 'watching', restartsInWindow: 1 });
    await t.tick();
    await t.settle('check', true);
    expect(t.monitor.status().state).toBe('healthy');
    expect(t.changes.map((c) => `${c.from}>${c.to}`)).toEqual(['stopped>watching', 'watching>restarting', 'restarting>watching', 'watching>healthy']);
    expect(t.switchovers).toEqual([]);
  });

  it('asks for a switchover once when restarts are exhausted, then checks no more', async () => {
    const t = setup({ maxRestarts: 1 });
    t.monitor.start();
    await t.tick();
    await t.settle('check', false);
    await t.settle('stop', true);
    await t.settle('start', true);
    await t.tick();
    await t.settle('check', false);
    expect(t.switchovers).toEqual(['application check failed after 1 local restart within 1m']);
    expect(t.monitor.status()).toMatchObject({ state: 'switched-over', restartsInWindow: 1 });
    await t.tick(60_000);
    expect(t.names()).toEqual(['check', 'stop', 'start', 'check']);
    expect(t.switchovers).toHaveLength(1);
  });

  it('restarts again at once when the restart\'s start fails, then switches over', async () => {
    const t = setup({ maxRestarts: 2 });
    t.monitor.start();
    await t.tick();
    await t.settle('check', false);
    await t.settle('stop', true);
    await t.settle('start', false);
    await t.settle('stop', true);
    await t.settle('start', false);
    expect(t.names()).toEqual(['check', 'stop', 'start', 'stop', 'start']);
    expect(t.switchovers).toEqual(['restart failed: the start script failed after 2 local restarts within 1m']);
  });

  it('starts nothing once stopped in the middle of a restart', async () => {
    const t = setup();
    t.monitor.start();
    await t.tick();
    await t.settle('check', false);
    expect(t.names()).toEqual(['check', 'stop']);
    let stopped = false;
    const done = t.monitor.stop().then(() => (stopped = true));
    await flush();
    expect(stopped).toBe(false); // waits for the script in flight
    expect(t.monitor.status().state).toBe('stopped');
    await t.settle('stop', true);
    await done;
    await t.tick(10_000);
    expect(t.names()).toEqual(['check', 'stop']);
  });

  it('ignores the result of a check that was in flight when it was stopped', async () => {
    const t = setup();
    t.monitor.start();
    await t.tick();
    const done = t.monitor.stop();
    await t.settle('check', false);
    await done;
    await t.tick(10_000);
    expect(t.names()).toEqual(['check']);
    expect(t.monitor.status()).toMatchObject({ state: 'stopped', restartsInWindow: 0 });
    expect(t.monitor.status().lastCheck).toBeUndefined();
  });

  it('begins again with a fresh restart budget when started after a switchover', async () => {
    const t = setup({ maxRestarts: 0 });
    t.monitor.start();
    await t.tick();
    await t.settle('check', false);
    expect(t.switchovers).toHaveLength(1);
    await t.monitor.stop();
    t.monitor.start();
    expect(t.monitor.status().state).toBe('watching');
    await t.tick();
    await t.settle('check', true);
    expect(t.monitor.status().state).toBe('healthy');
  });
});
