// Application monitoring with real scripts: the check fails while a flag file exists; start and
// stop write their runs to a log, so the test sees the restarts in the order they ran.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AppMonitor, ScriptRunner } from '../../../agent/scripts/index.ts';
import { captureLog, tempDir, waitFor, writeScript } from './fixtures.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(opts: { maxRestarts: number; startClearsFlag?: boolean }) {
  const dir = tempDir();
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const flag = path.join(dir, 'broken');
  const runs = path.join(dir, 'runs.log');
  const paths = {
    start: writeScript(dir, 'start.sh', `echo "start $TANDEM_REASON" >> runs.log${opts.startClearsFlag === true ? '; rm -f broken' : ''}`),
    stop: writeScript(dir, 'stop.sh', 'echo "stop $TANDEM_REASON" >> runs.log'),
    check: writeScript(dir, 'check.sh', 'if [ -f broken ]; then echo "the application is broken" >&2; exit 1; fi'),
  };
  const cap = captureLog();
  const runner = new ScriptRunner({ paths, timeoutMs: 5000, checkTimeoutMs: 5000, env: { node: 'alpha', peer: 'beta', pair: 'demo' }, log: cap.log });
  const switchovers: string[] = [];
  const monitor = new AppMonitor({
    runner,
    intervalMs: 50,
    maxRestarts: opts.maxRestarts,
    restartWindowMs: 60_000,
    context: () => ({ role: 'active', reason: 'monitor', generation: 'g1' }),
    onSwitchover: (reason) => switchovers.push(reason),
    log: cap.log,
  });
  cleanups.push(() => monitor.stop());
  const runLines = () => (fs.existsSync(runs) ? fs.readFileSync(runs, 'utf8').trim().split('\n') : []);
  return { flag, monitor, runner, switchovers, cap, runLines };
}

describe('application monitoring with real scripts', () => {
  it('restarts the application after a failed check, then asks for a switchover when restarts do not help', async () => {
    const t = setup({ maxRestarts: 2 });
    t.monitor.start();
    await waitFor(() => (t.runner.history().some((r) => r.name === 'check' && r.ok) ? true : undefined));
    expect(t.monitor.status().state).toBe('healthy');
    fs.writeFileSync(t.flag, '');
    await waitFor(() => t.switchovers[0], 10_000, 'the switchover callback');
    expect(t.runLines().map((l) => l.split(' ')[0])).toEqual(['stop', 'start', 'stop', 'start']);
    expect(t.runLines()[0]).toBe('stop restart: application check failed; local restart 1 of 2 within 1m');
    expect(t.switchovers).toEqual(['application check failed after 2 local restarts within 1m']);
    expect(t.monitor.status()).toMatchObject({ state: 'switched-over', restartsInWindow: 2, lastCheck: { ok: false } });
    // Checking stopped: no check after the one that gave up.
    const checks = t.runner.history().filter((r) => r.name === 'check').length;
    await new Promise((r) => setTimeout(r, 300));
    expect(t.runner.history().filter((r) => r.name === 'check')).toHaveLength(checks);
    expect(t.switchovers).toHaveLength(1);
    const lines = t.cap.lines();
    expect(lines.filter((l) => l.msg === 'app monitor: restarting the application')).toHaveLength(2);
    expect(lines.find((l) => l.msg === 'script: check failed')).toMatchObject({ component: 'scripts', level: 'warn' });
    expect(lines.find((l) => l.msg === 'the application is broken')).toMatchObject({ component: 'scripts', script: 'check', stream: 'stderr' });
  });

  it('goes back to healthy when a restart repairs the application', async () => {
    const t = setup({ maxRestarts: 2, startClearsFlag: true });
    fs.writeFileSync(t.flag, '');
    t.monitor.start();
    await waitFor(() => (t.monitor.status().state === 'healthy' ? true : undefined));
    expect(t.runLines().map((l) => l.split(' ')[0])).toEqual(['stop', 'start']);
    expect(t.monitor.status().restartsInWindow).toBe(1);
    expect(t.switchovers).toEqual([]);
  });
});
