import { describe, expect, it } from 'vitest';
import { LogLimiter } from '../../../agent/channel/log-limiter.ts';
import { FakeClock } from '../../../shared/clock.ts';

describe('LogLimiter', () => {
  it('admits the first line for a key, then one per interval with the count left out', () => {
    const clock = new FakeClock();
    const limiter = new LogLimiter(clock, 30_000);
    expect(limiter.admit('auth 10.0.0.9')).toEqual({ suppressed: 0 });
    clock.advance(5_000);
    expect(limiter.admit('auth 10.0.0.9')).toBeUndefined();
    expect(limiter.admit('auth 10.0.0.9')).toBeUndefined();
    expect(limiter.admit('auth 10.0.0.8')).toEqual({ suppressed: 0 });
    clock.advance(25_000);
    expect(limiter.admit('auth 10.0.0.9')).toEqual({ suppressed: 2 });
  });
});
