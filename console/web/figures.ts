// The figures the charts draw: per node, a time series of samples from its status document (the
// agent's last hour from GET /v1/history, then one per reading of the page), and the rates
// between samples. Pure and bounded: samples older than the window are dropped.
import type { AgentStatus } from '../../agent/control/status.ts';

export interface Sample {
  t: number;
  active: boolean;
  channelUp: boolean;
  rttMs: number | null;
  lagMs: number;
  queueBytes: number;
  headSeq: number;
  appliedSeq: number;
  bytesOut: number;
  bytesIn: number;
}

export interface Point {
  t: number;
  v: number | null;
}

/** Kept in the browser: the agent keeps an hour too, so a reload loses nothing. */
export const FIGURES_WINDOW_MS = 3_600_000;

export function sampleOf(s: AgentStatus, t: number): Sample {
  const r = s.replication;
  return { t, active: s.role === 'active', channelUp: s.links.channel === 'up', rttMs: s.links.heartbeat.rttMs ?? null, lagMs: r.lagMs, queueBytes: r.queueBytes, headSeq: r.headSeq, appliedSeq: r.appliedSeq, bytesOut: s.channel.bytesOut, bytesIn: s.channel.bytesIn };
}

/** GET /v1/history's rows, by its field names (a newer agent may add columns: they are ignored). */
export function samplesFromHistory(answer: { fields?: unknown; rows?: unknown }): Sample[] {
  if (!Array.isArray(answer.fields) || !Array.isArray(answer.rows)) return [];
  const at = (name: string) => (answer.fields as unknown[]).indexOf(name);
  const idx = { t: at('t'), active: at('active'), channelUp: at('channelUp'), rttMs: at('rttMs'), lagMs: at('lagMs'), queueBytes: at('queueBytes'), headSeq: at('headSeq'), appliedSeq: at('appliedSeq'), bytesOut: at('bytesOut'), bytesIn: at('bytesIn') };
  const num = (row: unknown[], i: number) => (i >= 0 && typeof row[i] === 'number' && Number.isFinite(row[i]) ? (row[i] as number) : 0);
  const out: Sample[] = [];
  for (const row of answer.rows as unknown[]) {
    if (!Array.isArray(row) || idx.t < 0 || typeof row[idx.t] !== 'number') continue;
    const rtt = idx.rttMs >= 0 ? row[idx.rttMs] : null;
    out.push({ t: num(row, idx.t), active: num(row, idx.active) === 1, channelUp: num(row, idx.channelUp) === 1, rttMs: typeof rtt === 'number' && Number.isFinite(rtt) ? rtt : null, lagMs: num(row, idx.lagMs), queueBytes: num(row, idx.queueBytes), headSeq: num(row, idx.headSeq), appliedSeq: num(row, idx.appliedSeq), bytesOut: num(row, idx.bytesOut), bytesIn: num(row, idx.bytesIn) });
  }
  return out;
}

export class Series {
  private samples: Sample[] = [];

  constructor(private readonly windowMs = FIGURES_WINDOW_MS) {}

  get all(): readonly Sample[] {
    return this.samples;
  }

  get last(): Sample | undefined {
    return this.samples[this.samples.length - 1];
  }

  /** Adds samples, kept in time order (the agent's history may arrive after the first live reading); one per instant. */
  add(...samples: Sample[]): void {
    for (const s of samples) {
      const last = this.last;
      if (last === undefined || s.t > last.t) {
        this.samples.push(s);
        continue;
      }
      let lo = 0;
      let hi = this.samples.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.samples[mid]!.t < s.t) lo = mid + 1;
        else hi = mid;
      }
      if (this.samples[lo]?.t !== s.t) this.samples.splice(lo, 0, s);
    }
    const from = (this.last?.t ?? 0) - this.windowMs;
    let drop = 0;
    while (drop < this.samples.length && this.samples[drop]!.t < from) drop++;
    if (drop > 0) this.samples = this.samples.slice(drop);
  }

  /** A field as points (null where it has no value: the channel down for the round-trip). */
  points(pick: (s: Sample) => number | null): Point[] {
    return this.samples.map((s) => ({ t: s.t, v: pick(s) }));
  }

  /**
   * The rate of a counter between consecutive samples, per second. A counter that went back
   * (the agent restarted) or a gap longer than `maxGapMs` gives no value there.
   */
  rate(pick: (s: Sample) => number, maxGapMs = 30_000): Point[] {
    const out: Point[] = [];
    for (let i = 1; i < this.samples.length; i++) {
      const a = this.samples[i - 1]!;
      const b = this.samples[i]!;
      const dt = b.t - a.t;
      const dv = pick(b) - pick(a);
      out.push({ t: b.t, v: dt > 0 && dt <= maxGapMs && dv >= 0 ? (dv * 1000) / dt : null });
    }
    return out;
  }

  /** The rate over the last `spanMs` (from the samples that span it), or null when unknown. */
  recentRate(pick: (s: Sample) => number, spanMs = 5000): number | null {
    const b = this.last;
    if (b === undefined) return null;
    let a: Sample | undefined;
    for (let i = this.samples.length - 2; i >= 0; i--) {
      a = this.samples[i]!;
      if (b.t - a.t >= spanMs) break;
    }
    if (a === undefined || b.t <= a.t) return null;
    const dv = pick(b) - pick(a);
    return dv < 0 ? null : (dv * 1000) / (b.t - a.t);
  }
}

/**
 * The rate of a progress figure (bytes done, or bytes left going down) over its last few
 * readings, and the largest total seen since it began: what a bar, a rate and an ETA need
 * when the agent reports only where it is now. A new `key` (another synchronisation) starts over.
 */
export class ProgressMeter {
  private key: string | undefined;
  private readings: { t: number; v: number }[] = [];
  private peak = 0;

  constructor(private readonly spanMs = 10_000) {}

  /**
   * `left` is what remains; `done` what is done when the agent says (a synchronisation), else it
   * is counted from the largest `left` seen since this key began (a catch-up).
   */
  observe(key: string, t: number, left: number, done?: number): { rate: number | null; done: number; total: number; etaMs: number | null } {
    if (key !== this.key) {
      this.key = key;
      this.readings = [];
      this.peak = 0;
    }
    this.peak = Math.max(this.peak, done === undefined ? left : done + left);
    const d = done ?? this.peak - left;
    const last = this.readings[this.readings.length - 1];
    if (last === undefined || t > last.t) this.readings.push({ t, v: d });
    while (this.readings.length > 2 && this.readings[this.readings.length - 1]!.t - this.readings[1]!.t >= this.spanMs) this.readings.shift();
    const a = this.readings[0]!;
    const b = this.readings[this.readings.length - 1]!;
    const rate = b.t > a.t && b.v >= a.v ? ((b.v - a.v) * 1000) / (b.t - a.t) : null;
    return { rate, done: d, total: this.peak, etaMs: rate !== null && rate > 0 ? (left / rate) * 1000 : null };
  }

  reset(): void {
    this.key = undefined;
    this.readings = [];
    this.peak = 0;
  }
}
