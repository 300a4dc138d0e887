// The last hour of a node's moving figures (heartbeat round-trip, lag, queue, sequences, channel
// bytes), sampled from its status document every HISTORY_SAMPLE_MS: a dashboard opened now
// draws the charts of what happened before it was opened, and a reload loses nothing. Bounded
// (one hour of numbers, ~60 KiB of JSON at most) and never on a decision's path.
import type { Clock, TimerHandle } from '../../shared/clock.ts';
import type { AgentStatus } from './status.ts';

export const HISTORY_SAMPLE_MS = 5000;
export const HISTORY_WINDOW_MS = 3_600_000;

/** The columns of one sample, in the order of GET /v1/history's rows. */
export const HISTORY_FIELDS = ['t', 'active', 'channelUp', 'rttMs', 'lagMs', 'queueBytes', 'headSeq', 'appliedSeq', 'bytesOut', 'bytesIn'] as const;
export type HistoryRow = [t: number, active: 0 | 1, channelUp: 0 | 1, rttMs: number | null, lagMs: number, queueBytes: number, headSeq: number, appliedSeq: number, bytesOut: number, bytesIn: number];

export function historyRow(s: AgentStatus, t: number): HistoryRow {
  const r = s.replication;
  return [t, s.role === 'active' ? 1 : 0, s.links.channel === 'up' ? 1 : 0, s.links.heartbeat.rttMs ?? null, r.lagMs, r.queueBytes, r.headSeq, r.appliedSeq, s.channel.bytesOut, s.channel.bytesIn];
}

export interface StatusHistoryOptions {
  status: () => AgentStatus;
  clock: Clock;
  sampleMs?: number;
  windowMs?: number;
}

export class StatusHistory {
  private readonly rows: HistoryRow[] = [];
  private timer: TimerHandle | undefined;
  private readonly sampleMs: number;
  private readonly windowMs: number;
  private running = false;

  constructor(private readonly opts: StatusHistoryOptions) {
    this.sampleMs = opts.sampleMs ?? HISTORY_SAMPLE_MS;
    this.windowMs = opts.windowMs ?? HISTORY_WINDOW_MS;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.tick();
  }

  stop(): void {
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private tick(): void {
    if (!this.running) return;
    try {
      this.sample();
    } finally {
      this.timer = this.opts.clock.setTimeout(() => this.tick(), this.sampleMs);
    }
  }

  /** Records the status document as it is now, and forgets what fell out of the window. */
  sample(): void {
    const now = this.opts.clock.now();
    this.rows.push(historyRow(this.opts.status(), now));
    const cap = Math.ceil(this.windowMs / this.sampleMs) + 1;
    while (this.rows.length > cap || (this.rows.length > 0 && this.rows[0]![0] < now - this.windowMs)) this.rows.shift();
  }

  /** GET /v1/history: the rows, oldest first, with the names of their columns. */
  answer(node: string): { node: string; sampleMs: number; windowMs: number; fields: readonly string[]; rows: HistoryRow[] } {
    return { node, sampleMs: this.sampleMs, windowMs: this.windowMs, fields: HISTORY_FIELDS, rows: [...this.rows] };
  }
}
