// The public checker's runner with a fake clock and injected probes: when rounds run, what is
// logged, and what a target that cannot be checked does to the verdict.
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../shared/clock.ts';
import type { PublicTarget } from '../../../shared/config/load.ts';
import { PublicChecker, PROBE_GRACE_MS, type PublicLinkView, type TargetOutcome, type TargetProbe } from '../../../agent/links/index.ts';
import { captureLog } from '../../integration/channel/log-capture.ts';

const TCP: PublicTarget = { url: 'tcp://192.0.2.1:80', kind: 'tcp', timeoutMs: 500 };
const PING: PublicTarget = { url: 'ping://192.0.2.2', kind: 'ping', timeoutMs: 500 };
const INTERVAL_MS = 1000;

/** Lets promise callbacks run after timers fired. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

async function advance(clock: FakeClock, ms: number, stepMs = 100): Promise<void> {
  for (let t = 0; t < ms; t += stepMs) {
    clock.advance(Math.min(stepMs, ms - t));
    await settle();
  }
}

/** A probe whose answer per URL the test sets, taking `durationMs` of fake time; records each start. */
function scriptedProbe(clock: FakeClock, durationMs = 0) {
  const answers = new Map<string, TargetOutcome>();
  const starts: { url: string; at: number }[] = [];
  const probe: TargetProbe = (t, signal) => {
    starts.push({ url: t.url, at: clock.now() });
    if (durationMs === 0) return Promise.resolve(answers.get(t.url) ?? { result: 'failed', latencyMs: 0, error: 'ECONNREFUSED' });
    return new Promise((resolve) => {
      const h = clock.setTimeout(() => resolve(answers.get(t.url) ?? { result: 'failed', latencyMs: durationMs, error: 'ECONNREFUSED' }), durationMs);
      signal.addEventListener('abort', () => {
        h.cancel();
        resolve({ result: 'failed', latencyMs: 0, error: 'stopped' });
      });
    });
  };
  return { probe, answers, starts };
}

function checker(targets: PublicTarget[], probe: TargetProbe, clock: FakeClock, threshold = 3) {
  const logs = captureLog();
  const c = new PublicChecker({ targets, intervalMs: INTERVAL_MS, threshold, clock, log: logs.log, probe });
  const changes: PublicLinkView[] = [];
  c.onChange((v) => changes.push(v));
  return { c, logs, changes };
}

describe('public checker', () => {
  it('runs the first round at once and then one every interval, start to start', async () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    const s = scriptedProbe(clock, 300);
    const { c } = checker([TCP, PING], s.probe, clock);
    c.start();
    await settle();
    await advance(clock, 2500);
    await c.stop();
    expect(s.starts.map((x) => x.at - t0)).toEqual([0, 0, 1000, 1000, 2000, 2000]);
  });

  it('never starts a round before the previous one ended', async () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    const s = scriptedProbe(clock, 2500);
    const { c } = checker([{ ...TCP, timeoutMs: 3000 }], s.probe, clock);
    c.start();
    await settle();
    await advance(clock, 6000);
    await c.stop();
    // Each round starts once the previous one ended (2.5 s), within one step of the fake clock.
    const at = s.starts.map((x) => x.at - t0);
    expect(at).toHaveLength(3);
    expect(at[0]).toBe(0);
    for (let i = 1; i < at.length; i++) {
      expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(2500);
      expect(at[i]! - at[i - 1]!).toBeLessThanOrEqual(2600);
    }
  });

  it('becomes failing after threshold failed rounds and logs each change once, not each probe', async () => {
    const clock = new FakeClock();
    const s = scriptedProbe(clock);
    s.answers.set(TCP.url, { result: 'ok', latencyMs: 2 });
    const { c, logs, changes } = checker([TCP], s.probe, clock);
    c.start();
    await settle();
    expect(c.view()).toMatchObject({ state: 'ok', checked: true });
    s.answers.set(TCP.url, { result: 'failed', latencyMs: 500, error: 'timed out after 500 ms' });
    await advance(clock, 2000);
    expect(c.view()).toMatchObject({ state: 'ok', consecutiveFailures: 2 });
    await advance(clock, 1000);
    const failing = c.view();
    expect(failing).toMatchObject({ state: 'failing', since: clock.now(), consecutiveFailures: 3 });
    await advance(clock, 5000);
    expect(c.view()).toMatchObject({ state: 'failing', since: failing.since, consecutiveFailures: 8 });
    await c.stop();

    expect(changes.map((v) => v.state)).toEqual(['ok', 'failing']);
    const lines = logs.lines().filter((l) => l.component === 'links');
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ['info', 'public checks: link ok'],
      ['warn', 'public checks: link failing'],
    ]);
    expect(lines[1]).toMatchObject({ from: 'ok', to: 'failing', failedRounds: 3, targets: [{ url: TCP.url, error: 'timed out after 500 ms' }] });
  });

  it('leaves a target it cannot check out of the verdict and says so once', async () => {
    const clock = new FakeClock();
    const s = scriptedProbe(clock);
    s.answers.set(TCP.url, { result: 'ok', latencyMs: 1 });
    s.answers.set(PING.url, { result: 'unavailable', error: 'cannot run ping: ENOENT' });
    const { c, logs } = checker([TCP, PING], s.probe, clock);
    c.start();
    await advance(clock, 3000);
    await c.stop();
    expect(s.starts.filter((x) => x.url === PING.url)).toHaveLength(1);
    expect(c.view()).toMatchObject({ state: 'ok', checked: true });
    expect(c.view().targets).toEqual([
      { url: TCP.url, ok: true, latencyMs: 1 },
      { url: PING.url, ok: null, error: 'unavailable: cannot run ping: ENOENT' },
    ]);
    const unavailable = logs.lines().filter((l) => l.msg.includes('cannot check a target'));
    expect(unavailable).toHaveLength(1);
    expect(unavailable[0]).toMatchObject({ level: 'warn', target: PING.url });
  });

  it('counts the link as up but unchecked when its only target cannot be checked', async () => {
    const clock = new FakeClock();
    const s = scriptedProbe(clock);
    s.answers.set(PING.url, { result: 'unavailable', error: 'ping is not permitted here' });
    const { c, logs } = checker([PING], s.probe, clock);
    c.start();
    await advance(clock, 3000);
    await c.stop();
    expect(c.view()).toMatchObject({ state: 'ok', checked: false });
    expect(logs.lines().filter((l) => l.msg.startsWith('public checks: no usable target left'))).toHaveLength(1);
  });

  it('with no target is ok and unchecked at once, warns once and runs no round', async () => {
    const clock = new FakeClock();
    const s = scriptedProbe(clock);
    const { c, logs } = checker([], s.probe, clock);
    expect(c.view()).toMatchObject({ state: 'ok', checked: false, lastRoundAt: undefined });
    c.start();
    c.start();
    await advance(clock, 3000);
    await c.stop();
    expect(s.starts).toHaveLength(0);
    expect(clock.pendingTimers()).toBe(0);
    const lines = logs.lines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', msg: expect.stringContaining('cannot tell that it is isolated') });
  });

  it('gives up on a probe that never settles, a grace period after its timeout', async () => {
    const clock = new FakeClock();
    let aborted = false;
    const hung: TargetProbe = (_t, signal) => {
      signal.addEventListener('abort', () => (aborted = true));
      return new Promise(() => {});
    };
    const { c } = checker([TCP], hung, clock, 1);
    c.start();
    await advance(clock, TCP.timeoutMs + PROBE_GRACE_MS);
    expect(aborted).toBe(true);
    expect(c.view()).toMatchObject({ state: 'failing', targets: [{ ok: false, error: `the check did not finish within ${TCP.timeoutMs + PROBE_GRACE_MS} ms` }] });
    await c.stop();
  });

  it('stops a round in progress without recording it, and leaves no timer', async () => {
    const clock = new FakeClock();
    const s = scriptedProbe(clock, 400);
    const { c } = checker([TCP], s.probe, clock);
    c.start();
    await advance(clock, 200);
    await c.stop();
    expect(c.view()).toMatchObject({ state: 'unknown', lastRoundAt: undefined });
    expect(clock.pendingTimers()).toBe(0);
  });

  it('stops calling a listener once it unsubscribed', async () => {
    const clock = new FakeClock();
    const s = scriptedProbe(clock);
    s.answers.set(TCP.url, { result: 'ok', latencyMs: 1 });
    const { c } = checker([TCP], s.probe, clock, 1);
    const seen: string[] = [];
    const off = c.onChange((v, change) => seen.push(`${change.from}>${v.state}`));
    c.start();
    await settle();
    off();
    s.answers.set(TCP.url, { result: 'failed', latencyMs: 1, error: 'x' });
    await advance(clock, 1000);
    await c.stop();
    expect(c.view().state).toBe('failing');
    expect(seen).toEqual(['unknown>ok']);
  });

  it('refuses a threshold or interval that is not a positive integer at construction', () => {
    const clock = new FakeClock();
    const log = captureLog().log;
    expect(() => new PublicChecker({ targets: [], intervalMs: 1000, threshold: 0, clock, log })).toThrow(/option "threshold"/);
    expect(() => new PublicChecker({ targets: [], intervalMs: 0, threshold: 3, clock, log })).toThrow(/option "intervalMs"/);
  });
});
