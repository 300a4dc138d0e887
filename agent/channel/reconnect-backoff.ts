// When to dial the peer again, and when to say so in the log. Pure over an injected clock and
// random source, so the whole schedule is tested with FakeClock. Doubling keeps a dead peer
// from being hammered; the cap keeps recovery quick once it is back (the heartbeat budget for a
// failover is seconds, so a reconnect must not sit behind a minute-long wait); jitter keeps
// restarted agents from dialing in lockstep.
import type { Clock } from '../../shared/clock.ts';

/** A connection that stayed open this long proves the peer is healthy: the next drop starts from the minimum delay again. */
export const STABLE_CONNECTION_MS = 10_000;

/** A failure whose level and kind did not change is logged at most this often (Litestream's habit). */
export const FAILURE_LOG_INTERVAL_MS = 30_000;

/** Each delay is moved by up to ±20 %. */
export const BACKOFF_JITTER = 0.2;

/**
 * The delay before attempt `level` (0 = first retry): min·2^level capped at max, then jittered
 * by ±20 % and kept within [0.8·min, max]. `random` returns [0, 1), 0.5 means no jitter.
 */
export function backoffDelayMs(level: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(level, 52));
  const jittered = base * (1 - BACKOFF_JITTER + 2 * BACKOFF_JITTER * random());
  return Math.round(Math.min(maxMs, Math.max(minMs * (1 - BACKOFF_JITTER), jittered)));
}

export interface ReconnectBackoffOptions {
  minMs: number;
  maxMs: number;
  clock: Clock;
  random?: () => number;
}

export class ReconnectBackoff {
  private levelNow = 0;
  /** The level the last delay was computed at: what "a level change" means for logging. */
  private delayLevel = 0;
  private connectedAt: number | undefined;
  private lastLog: { level: number; kind: string; at: number } | undefined;
  private suppressedCount = 0;

  constructor(private readonly opts: ReconnectBackoffOptions) {}

  /** The level of the next delay: how many delays have doubled since the last reset. */
  get level(): number {
    return this.levelNow;
  }

  /** The delay before the next attempt; each call moves one level up until the cap. */
  nextDelayMs(): number {
    const { minMs, maxMs, random } = this.opts;
    const delay = backoffDelayMs(this.levelNow, minMs, maxMs, random);
    this.delayLevel = this.levelNow;
    if (minMs * 2 ** this.levelNow < maxMs) this.levelNow += 1;
    return delay;
  }

  /** A connection opened. The level is kept: a connection that drops at once must not reconnect in a tight loop. */
  connected(): void {
    this.connectedAt = this.opts.clock.monotonic();
    this.lastLog = undefined;
    this.suppressedCount = 0;
  }

  /** The connection closed; back to the minimum delay if it had stayed open long enough. */
  disconnected(): void {
    if (this.connectedAt !== undefined && this.opts.clock.monotonic() - this.connectedAt >= STABLE_CONNECTION_MS) {
      this.levelNow = 0;
    }
    this.connectedAt = undefined;
  }

  /**
   * Whether a failed attempt should be logged: when the level of its delay or the kind of
   * failure changed since the last logged one, or FAILURE_LOG_INTERVAL_MS passed. Call once per
   * failure, after nextDelayMs().
   */
  shouldLogFailure(kind: string): boolean {
    const now = this.opts.clock.monotonic();
    const last = this.lastLog;
    if (last === undefined || last.level !== this.delayLevel || last.kind !== kind || now - last.at >= FAILURE_LOG_INTERVAL_MS) {
      this.lastLog = { level: this.delayLevel, kind, at: now };
      return true;
    }
    this.suppressedCount += 1;
    return false;
  }

  /** Failures not logged since the last logged one; reading it starts a new count. */
  takeSuppressed(): number {
    const n = this.suppressedCount;
    this.suppressedCount = 0;
    return n;
  }
}
