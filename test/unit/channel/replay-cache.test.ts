import { describe, expect, it } from 'vitest';
import { REPLAY_WINDOW_MS, ReplayCache } from '../../../agent/channel/replay-cache.ts';
import { FakeClock } from '../../../shared/clock.ts';

describe('ReplayCache', () => {
  it('calls a nonce fresh the first time and replayed after', () => {
    const cache = new ReplayCache(new FakeClock());
    expect(cache.remember('a')).toBe('fresh');
    expect(cache.remember('a')).toBe('replayed');
    expect(cache.remember('b')).toBe('fresh');
  });

  it('remembers a nonce for the whole window and forgets it after', () => {
    const clock = new FakeClock();
    const cache = new ReplayCache(clock);
    cache.remember('a');
    clock.advance(REPLAY_WINDOW_MS - 1);
    expect(cache.remember('a')).toBe('replayed');
    clock.advance(1);
    expect(cache.remember('a')).toBe('fresh');
  });

  it('refuses new nonces when full instead of forgetting live ones, and recovers as they expire', () => {
    const clock = new FakeClock();
    const cache = new ReplayCache(clock, 1_000, 3);
    expect(['a', 'b', 'c'].map((n) => cache.remember(n))).toEqual(['fresh', 'fresh', 'fresh']);
    expect(cache.remember('d')).toBe('full');
    expect(cache.remember('a')).toBe('replayed');
    clock.advance(1_000);
    expect(cache.remember('d')).toBe('fresh');
    expect(cache.size).toBe(1);
  });
});
