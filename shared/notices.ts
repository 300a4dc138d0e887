// Warnings that do not stop replication but must not go unseen: a path skipped because a
// directory was swapped for a link, a setuid bit cleared, an extended attribute not applied.
// Each code is kept once, with the latest occurrence, how many there were and when it began,
// for an hour after the last one (status shows them as alarms meanwhile); the log gets one line
// per code and path at most once a minute, so a flood of them costs a bounded amount of log.
import type { Clock } from './clock.ts';
import type { ErrorCode } from './errors.ts';
import type { Logger } from './log.ts';

/** How long a notice stays in status after its last occurrence. */
export const NOTICE_RETENTION_MS = 60 * 60 * 1000;
/** The same code and path is logged at most once per this interval. */
const LOG_EVERY_MS = 60 * 1000;
/** Distinct (code, path) pairs remembered for log rate limiting. */
const MAX_LOGGED_KEYS = 1024;

export interface Notice {
  code: ErrorCode;
  /** The latest occurrence, in words ("op: reason"). */
  message: string;
  hint?: string | undefined;
  /** First occurrence still retained, and the latest. */
  since: number;
  last: number;
  count: number;
  details?: Record<string, unknown> | undefined;
}

export class Notices {
  private readonly byCode = new Map<ErrorCode, Notice>();
  private readonly logged = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** Records one occurrence; `path` (root/path) keys the log's rate limit. */
  add(code: ErrorCode, message: string, hint: string | undefined, details: Record<string, unknown> = {}, path = ''): void {
    const now = this.clock.now();
    const cur = this.byCode.get(code);
    if (cur === undefined || now - cur.last > NOTICE_RETENTION_MS) {
      this.byCode.set(code, { code, message, hint, since: now, last: now, count: 1, details });
    } else {
      cur.message = message;
      cur.hint = hint;
      cur.last = now;
      cur.count++;
      cur.details = details;
    }
    const key = `${code}\0${path}`;
    const at = this.logged.get(key);
    if (at === undefined || now - at >= LOG_EVERY_MS) {
      if (this.logged.size >= MAX_LOGGED_KEYS) this.logged.clear();
      this.logged.set(key, now);
      this.log.warn({ code, ...details }, message);
    }
  }

  /** The notices still retained, oldest code first. */
  list(): Notice[] {
    const now = this.clock.now();
    const out: Notice[] = [];
    for (const [code, n] of this.byCode) {
      if (now - n.last > NOTICE_RETENTION_MS) this.byCode.delete(code);
      else out.push({ ...n });
    }
    return out;
  }
}
