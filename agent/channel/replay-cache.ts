// Remembers the nonces of accepted channel handshakes for a while, so that a recorded upgrade
// request (headers and all) cannot be played back to open a second connection. The window is
// twice the allowed clock skew: a request older than the skew is refused on its timestamp, so
// a nonce only has to be remembered for as long as its timestamp could still pass.
import type { Clock } from '../../shared/clock.ts';

/** How long an accepted nonce is remembered. */
export const REPLAY_WINDOW_MS = 10 * 60_000;

/** Bound on remembered nonces. Only handshakes with a valid proof are remembered, so only a key
 * holder can fill it; at the fastest reconnect pace (100 ms) ten minutes hold 6,000. */
export const REPLAY_CACHE_MAX_ENTRIES = 65_536;

export type ReplayVerdict = 'fresh' | 'replayed' | 'full';

export class ReplayCache {
  /** nonce → monotonic expiry. Insertion order is expiry order (the clock never goes back). */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly windowMs = REPLAY_WINDOW_MS,
    private readonly maxEntries = REPLAY_CACHE_MAX_ENTRIES,
  ) {}

  /**
   * 'fresh' when the nonce was not seen within the window (it is remembered from now on);
   * 'replayed' when it was; 'full' when the cache cannot remember it (refuse: failing closed
   * beats forgetting a nonce that could then be replayed).
   */
  remember(nonce: string): ReplayVerdict {
    const now = this.clock.monotonic();
    this.prune(now);
    if (this.seen.has(nonce)) return 'replayed';
    if (this.seen.size >= this.maxEntries) return 'full';
    this.seen.set(nonce, now + this.windowMs);
    return 'fresh';
  }

  get size(): number {
    return this.seen.size;
  }

  private prune(now: number): void {
    for (const [nonce, expiresAt] of this.seen) {
      if (expiresAt > now) break;
      this.seen.delete(nonce);
    }
  }
}
