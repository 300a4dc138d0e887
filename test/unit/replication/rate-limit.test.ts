// The bandwidth limit's bucket with a fake clock: a second's worth at once, then the pace of
// the limit; a batch larger than that overdraws and the next waits for the debt.
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../shared/clock.ts';
import { RateLimit } from '../../../agent/replication/rate-limit.ts';

describe('bandwidth limit', () => {
  it('lets a second worth through at once, then holds the pace of the limit', () => {
    const clock = new FakeClock();
    const r = new RateLimit(1000, clock);
    expect(r.delayFor(600)).toBe(0);
    expect(r.delayFor(600)).toBe(0); // overdraws by 200
    expect(r.delayFor(100)).toBe(200); // waits for the debt
    clock.advance(200);
    expect(r.delayFor(100)).toBe(0);
    // Over 10 s of fake time, about 10 × 1000 bytes go through, never much more.
    let sent = 0;
    for (let t = 0; t < 10_000; t += 10) {
      clock.advance(10);
      if (r.delayFor(100) === 0) sent += 100;
    }
    expect(sent).toBeGreaterThanOrEqual(9_800);
    expect(sent).toBeLessThanOrEqual(10_200);
  });

  it('lets a batch larger than a second through, and the next one waits until it is paid', () => {
    const clock = new FakeClock();
    const r = new RateLimit(1000, clock);
    expect(r.delayFor(4000)).toBe(0);
    expect(r.delayFor(1)).toBe(3000);
    clock.advance(2999);
    expect(r.delayFor(1)).toBe(1);
    clock.advance(1);
    expect(r.delayFor(1)).toBe(0);
  });
});
