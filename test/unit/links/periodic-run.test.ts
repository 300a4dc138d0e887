import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../shared/clock.ts';
import { PeriodicRun } from '../../../agent/links/periodic-run.ts';

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

async function advance(clock: FakeClock, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 50) {
    clock.advance(Math.min(50, ms - t));
    await settle();
  }
}

/** A step that takes `durationMs` of fake time, recording when each started and ended. */
function timedStep(clock: FakeClock, durationMs: number) {
  const spans: { start: number; end?: number; aborted?: boolean }[] = [];
  const step = (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const span: { start: number; end?: number; aborted?: boolean } = { start: clock.monotonic() };
      spans.push(span);
      const h = clock.setTimeout(() => {
        span.end = clock.monotonic();
        resolve();
      }, durationMs);
      signal.addEventListener('abort', () => {
        h.cancel();
        span.aborted = true;
        resolve();
      });
    });
  return { step, spans };
}

describe('periodic run', () => {
  it('starts a step every interval, start to start, when steps are shorter than the interval', async () => {
    const clock = new FakeClock();
    const s = timedStep(clock, 300);
    const run = new PeriodicRun({ clock, intervalMs: 1000, step: s.step, onError: () => {} });
    run.start();
    await advance(clock, 3100);
    await run.stop();
    expect(s.spans.map((x) => x.start)).toEqual([0, 1000, 2000, 3000]);
  });

  it('starts the next step only when a long one ended, never two at once', async () => {
    const clock = new FakeClock();
    const s = timedStep(clock, 1500);
    const run = new PeriodicRun({ clock, intervalMs: 1000, step: s.step, onError: () => {} });
    run.start();
    await advance(clock, 4600);
    await run.stop();
    expect(s.spans.map((x) => [x.start, x.end])).toEqual([
      [0, 1500],
      [1500, 3000],
      [3000, 4500],
      [4500, undefined],
    ]);
  });

  it('aborts the step in progress on stop, resolves after it ended, and leaves no timer', async () => {
    const clock = new FakeClock();
    const s = timedStep(clock, 500);
    const run = new PeriodicRun({ clock, intervalMs: 1000, step: s.step, onError: () => {} });
    run.start();
    await advance(clock, 200);
    await run.stop();
    expect(s.spans).toEqual([{ start: 0, aborted: true }]);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('reports a step that throws and carries on', async () => {
    const clock = new FakeClock();
    const errors: unknown[] = [];
    let calls = 0;
    const run = new PeriodicRun({
      clock,
      intervalMs: 100,
      step: async () => {
        calls += 1;
        throw new Error('bug');
      },
      onError: (err) => errors.push(err),
    });
    run.start();
    await advance(clock, 250);
    await run.stop();
    expect(calls).toBe(3);
    expect(errors).toHaveLength(3);
  });
});
