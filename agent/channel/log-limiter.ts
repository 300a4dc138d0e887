// At most one log line per key per interval: a misconfigured peer retrying every few seconds,
// or a scanner knocking on the channel port, must not bury the log. The first line for a key
// is always written; the next one says how many were left out.
import type { Clock } from '../../shared/clock.ts';

export const AUTH_LOG_INTERVAL_MS = 30_000;

const MAX_KEYS = 1024;

export class LogLimiter {
  private readonly keys = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs = AUTH_LOG_INTERVAL_MS,
  ) {}

  /** `{ suppressed }` when a line for `key` should be written now; undefined when it is left out. */
  admit(key: string): { suppressed: number } | undefined {
    const now = this.clock.monotonic();
    const entry = this.keys.get(key);
    if (entry !== undefined && now - entry.at < this.intervalMs) {
      entry.suppressed += 1;
      return undefined;
    }
    // Many distinct keys (addresses) only happen under a scan: forgetting them all costs one
    // extra line each, remembering them without bound would cost memory.
    if (entry === undefined && this.keys.size >= MAX_KEYS) this.keys.clear();
    this.keys.set(key, { at: now, suppressed: 0 });
    return { suppressed: entry?.suppressed ?? 0 };
  }
}
