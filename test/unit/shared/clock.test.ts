// The fake clock's timers, sleeps and intervals: what every timing test in the tree stands on.
import { describe, expect, it } from 'vitest';
import { FakeClock, systemClock } from '../../../shared/clock.ts';

describe('fake clock', () => {
  it('fires an interval every period until cancelled, and never between', () => {
    const clock = new FakeClock(0);
    const at: number[] = [];
    const h = clock.setInterval(() => at.push(clock.now()), 250);
    clock.advance(249);
    expect(at).toEqual([]);
    clock.advance(751);
    expect(at).toEqual([250, 500, 750, 1000]);
    h.cancel();
    clock.advance(1000);
    expect(at).toHaveLength(4);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('stops an interval cancelled from its own callback', () => {
    const clock = new FakeClock(0);
    let n = 0;
    const h = clock.setInterval(() => {
      n += 1;
      if (n === 2) h.cancel();
    }, 10);
    clock.advance(100);
    expect(n).toBe(2);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('ends a sleep when the time comes, and lets the code after it run before the next timer', async () => {
    const clock = new FakeClock(0);
    const order: string[] = [];
    void (async () => {
      await clock.sleep(100);
      order.push(`woke ${clock.now()}`);
      await clock.sleep(100);
      order.push(`woke ${clock.now()}`);
    })();
    clock.setTimeout(() => order.push(`timer ${clock.now()}`), 150);
    await clock.advanceAsync(99);
    expect(order).toEqual([]);
    await clock.advanceAsync(200);
    expect(order).toEqual(['woke 100', 'timer 150', 'woke 200']);
    expect(clock.now()).toBe(299);
  });
});

describe('system clock', () => {
  it('sleeps in real time and cancels its interval', async () => {
    const t0 = systemClock.monotonic();
    await systemClock.sleep(20);
    expect(systemClock.monotonic() - t0).toBeGreaterThanOrEqual(15);
    let n = 0;
    const h = systemClock.setInterval(() => (n += 1), 5);
    await systemClock.sleep(40);
    h.cancel();
    const seen = n;
    await systemClock.sleep(20);
    expect(seen).toBeGreaterThan(0);
    expect(n).toBe(seen);
  });
});
