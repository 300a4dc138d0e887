// A bandwidth limit for the bulk data the active sends (replication and synchronisation alike):
// a token bucket in bytes, refilled at `bytesPerSecond`, holding at most one second's worth.
// A batch may leave while the bucket is not in debt, and overdraw it (batches are larger than a
// slow link's second); the next waits until the debt is paid. It never delays anything else:
// heartbeats, acknowledgements and control messages do not pass through it.
import type { Clock } from '../../shared/clock.ts';

export class RateLimit {
  private available: number;
  private last: number;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly clock: Clock,
  ) {
    this.available = bytesPerSecond;
    this.last = clock.monotonic();
  }

  /** 0: send `bytes` now (they are counted); otherwise how many ms to wait before asking again. */
  delayFor(bytes: number): number {
    const now = this.clock.monotonic();
    this.available = Math.min(this.bytesPerSecond, this.available + ((now - this.last) * this.bytesPerSecond) / 1000);
    this.last = now;
    if (this.available >= 0) {
      this.available -= bytes;
      return 0;
    }
    return Math.max(1, Math.ceil((-this.available * 1000) / this.bytesPerSecond));
  }
}
